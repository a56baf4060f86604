# Multi-rank runs of test_dist (tests named Mpi*); see pathvlm_mpi_test in tests/CMakeLists.txt.
pathvlm_mpi_test(dist_comm_2ranks dist 2 "MpiComm.*")
pathvlm_mpi_test(dist_comm_3ranks dist 3 "MpiComm.*")
pathvlm_mpi_test(dist_reducer_2ranks dist 2 "MpiReducer.*")
pathvlm_mpi_test(dist_reducer_3ranks dist 3 "MpiReducer.*")
