// Compiles src/core/pch.h once; every other target reuses the result.
