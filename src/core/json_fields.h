// Typed reads of the keys of JSON that other programs write (a Hugging Face config.json, a PEFT
// adapter_config.json): nlohmann's get<T>() and value() throw their own type_error, which names neither the file
// nor the key. Here a key that is absent or null gives the fallback, and a value of another type is an Error
// "<where>: '<key>' must be <kind>, got <value>".
//
//   const auto act = json_fields::string_or(config, "hidden_act", "silu", "vicuna/config.json");
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace pathvlm::json_fields {

// `text` as JSON, or an Error "<where>: not valid JSON (<what the parser says>)".
nlohmann::json parse(const std::string& text, const std::string& where);
bool present(const nlohmann::json& object, const char* key);  // there and not null
std::string string_or(const nlohmann::json& object, const char* key, const std::string& fallback,
                      const std::string& where);
double number_or(const nlohmann::json& object, const char* key, double fallback, const std::string& where);
bool bool_or(const nlohmann::json& object, const char* key, bool fallback, const std::string& where);
// Exact integers in int64_t's range (nlohmann would truncate 64.5 to 64 and wrap 2^64 - 1 to -1).
int64_t integer_or(const nlohmann::json& object, const char* key, int64_t fallback, const std::string& where);

}  // namespace pathvlm::json_fields
