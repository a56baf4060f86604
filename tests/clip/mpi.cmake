# Multi-rank runs of test_clip (tests named Mpi*); see pathvlm_mpi_test in tests/CMakeLists.txt.
pathvlm_mpi_test(clip_loss_2ranks clip 2 "MpiClipLoss.*:MpiClipEval.*")
pathvlm_mpi_test(clip_loss_3ranks clip 3 "MpiClipLoss.*:MpiClipEval.*")
