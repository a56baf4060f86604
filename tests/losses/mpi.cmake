# Multi-rank runs of test_losses (tests named Mpi*); see pathvlm_mpi_test in tests/CMakeLists.txt.
pathvlm_mpi_test(losses_2ranks losses 2 "MpiClipLoss.*")
pathvlm_mpi_test(losses_3ranks losses 3 "MpiClipLoss.*")
