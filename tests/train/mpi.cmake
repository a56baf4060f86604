# Multi-rank runs of test_train (tests named Mpi*); see pathvlm_mpi_test in tests/CMakeLists.txt.
pathvlm_mpi_test(train_memory_2ranks train 2 "MpiMemoryTable.*")
pathvlm_mpi_test(train_step_syncs_2ranks train 2 "MpiStepSyncs.*")
