#include "core/json_fields.h"

#include <limits>

#include "core/error.h"

namespace pathvlm::json_fields {

nlohmann::json parse(const std::string& text, const std::string& where) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(str(where, ": not valid JSON (", e.what(), ")"));
  }
}

bool present(const nlohmann::json& object, const char* key) {
  return object.is_object() && object.contains(key) && !object.at(key).is_null();
}

namespace {

// The value of `key`, which must satisfy `is_kind`, else an Error saying it must be `kind`.
template <class IsKind>
const nlohmann::json& typed(const nlohmann::json& object, const char* key, IsKind is_kind, const char* kind,
                            const std::string& where) {
  const auto& value = object.at(key);
  PATHVLM_CHECK(is_kind(value), where, ": '", key, "' must be ", kind, ", got ", value.dump());
  return value;
}

}  // namespace

std::string string_or(const nlohmann::json& object, const char* key, const std::string& fallback,
                      const std::string& where) {
  if (!present(object, key)) return fallback;
  return typed(object, key, [](const auto& v) { return v.is_string(); }, "a string", where).get<std::string>();
}

double number_or(const nlohmann::json& object, const char* key, double fallback, const std::string& where) {
  if (!present(object, key)) return fallback;
  return typed(object, key, [](const auto& v) { return v.is_number(); }, "a number", where).get<double>();
}

bool bool_or(const nlohmann::json& object, const char* key, bool fallback, const std::string& where) {
  if (!present(object, key)) return fallback;
  return typed(object, key, [](const auto& v) { return v.is_boolean(); }, "true or false", where).get<bool>();
}

int64_t integer_or(const nlohmann::json& object, const char* key, int64_t fallback, const std::string& where) {
  if (!present(object, key)) return fallback;
  auto is_int64 = [](const nlohmann::json& v) {
    return v.is_number_integer() &&
           (!v.is_number_unsigned() || v.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max()));
  };
  return typed(object, key, is_int64, "an integer", where).get<int64_t>();
}

}  // namespace pathvlm::json_fields
