// CRC-32 (the zlib / Python `zlib.crc32` polynomial), incremental: crc32(b, nb, crc32(a, na)) == crc32(a+b).
#pragma once
#include <cstddef>
#include <cstdint>

namespace pathvlm {

uint32_t crc32(const void* data, size_t size, uint32_t previous = 0);

}  // namespace pathvlm
