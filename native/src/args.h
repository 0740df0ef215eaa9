// Argument checks shared by the bindings: bad input from JS becomes a
// BpfError (EINVAL) naming the argument, never a crash.
#pragma once

#include <napi.h>

#include <cmath>
#include <optional>
#include <string>

#include "errors.h"

namespace pharos {

inline bool IsAbsent(const Napi::Value &v) { return v.IsUndefined() || v.IsNull(); }

inline Napi::Buffer<uint8_t> ArgBuffer(const Napi::Value &v, const std::string &what) {
  if (!v.IsBuffer()) ThrowInvalid(v.Env(), what + " must be a Buffer");
  return v.As<Napi::Buffer<uint8_t>>();
}

// Same, naming the argument only when it is wrong (hot paths: map ops).
template <typename Describe>
inline Napi::Buffer<uint8_t> ArgBufferNamed(const Napi::Value &v, Describe describe) {
  if (!v.IsBuffer()) ThrowInvalid(v.Env(), describe() + " must be a Buffer");
  return v.As<Napi::Buffer<uint8_t>>();
}

inline std::string ArgString(const Napi::Value &v, const std::string &what) {
  if (!v.IsString()) ThrowInvalid(v.Env(), what + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

inline std::optional<std::string> OptString(const Napi::Value &v, const std::string &what) {
  if (IsAbsent(v)) return std::nullopt;
  return ArgString(v, what);
}

// An integer in [min, max]; doubles with a fraction and NaN are refused.
// `describe()` names the argument, called only when it is wrong.
template <typename Describe>
inline int64_t ArgIntNamed(const Napi::Value &v, Describe describe, int64_t min, int64_t max) {
  if (!v.IsNumber()) ThrowInvalid(v.Env(), describe() + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || std::floor(d) != d || d < static_cast<double>(min) ||
      d > static_cast<double>(max)) {
    ThrowInvalid(v.Env(), describe() + " must be an integer in [" + std::to_string(min) + ", " +
                              std::to_string(max) + "], got " + v.ToString().Utf8Value());
  }
  return static_cast<int64_t>(d);
}

inline int64_t ArgInt(const Napi::Value &v, const std::string &what, int64_t min, int64_t max) {
  return ArgIntNamed(v, [&what] { return what; }, min, max);
}

inline int64_t OptInt(const Napi::Value &v, const std::string &what, int64_t min, int64_t max,
                      int64_t fallback) {
  if (IsAbsent(v)) return fallback;
  return ArgInt(v, what, min, max);
}

inline Napi::Value ArgAt(const Napi::CallbackInfo &info, size_t i) {
  return i < info.Length() ? info[i] : info.Env().Undefined();
}

}  // namespace pharos
