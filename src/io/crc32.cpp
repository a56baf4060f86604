#include "io/crc32.h"

#include <zlib.h>

namespace pathvlm {

uint32_t crc32(const void* data, size_t size, uint32_t previous) {
  return static_cast<uint32_t>(::crc32_z(previous, static_cast<const Bytef*>(data), size));
}

}  // namespace pathvlm
