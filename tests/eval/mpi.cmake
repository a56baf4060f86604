# Multi-rank runs of test_eval (tests named Mpi*); see pathvlm_mpi_test in tests/CMakeLists.txt.
pathvlm_mpi_test(eval_2ranks eval 2 "MpiEval.*")
pathvlm_mpi_test(eval_3ranks eval 3 "MpiEval.*")
