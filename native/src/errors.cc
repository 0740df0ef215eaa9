#include "errors.h"

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>

#include "addon_data.h"

namespace pharos {

namespace {

constexpr size_t kRingLines = 256;
constexpr size_t kMaxLineChars = 400;

struct LogRing {
  std::mutex mu;
  std::deque<std::string> lines;  // lines[i] has sequence number first + i
  uint64_t first = 0;
  std::string partial;            // text of a line not yet terminated by '\n'
  bool echoAll = false;           // PHAROS_LIBBPF_LOG=debug: echo everything to stderr
};

LogRing &Ring() {
  static LogRing ring;
  return ring;
}

void PushLine(LogRing &ring, std::string line) {
  if (line.size() > kMaxLineChars) line = line.substr(0, kMaxLineChars) + "...";
  ring.lines.push_back(std::move(line));
  if (ring.lines.size() > kRingLines) {
    ring.lines.pop_front();
    ring.first++;
  }
}

int PrintCallback(enum libbpf_print_level level, const char *fmt, va_list args) {
  LogRing &ring = Ring();
  if (ring.echoAll) {
    va_list copy;
    va_copy(copy, args);
    vfprintf(stderr, fmt, copy);
    va_end(copy);
  }
  if (level != LIBBPF_WARN) return 0;
  // The verifier log arrives as one call of any length, its reason at the
  // end: format all of it, then split it into lines.
  va_list sizing;
  va_copy(sizing, args);
  int n = vsnprintf(nullptr, 0, fmt, sizing);
  va_end(sizing);
  if (n < 0) return 0;
  std::string formatted(static_cast<size_t>(n) + 1, '\0');
  vsnprintf(formatted.data(), formatted.size(), fmt, args);
  formatted.resize(static_cast<size_t>(n));
  std::lock_guard<std::mutex> lock(ring.mu);
  std::string text = ring.partial + formatted;
  ring.partial.clear();
  size_t start = 0;
  for (;;) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) break;
    if (nl > start) PushLine(ring, text.substr(start, nl - start));
    start = nl + 1;
  }
  if (start < text.size()) ring.partial = text.substr(start);
  return 0;
}

}  // namespace

void InstallLibbpfLog() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char *env = getenv("PHAROS_LIBBPF_LOG");
    Ring().echoAll = env != nullptr && strcmp(env, "debug") == 0;
    libbpf_set_print(PrintCallback);
  });
}

uint64_t LogMark() {
  LogRing &ring = Ring();
  std::lock_guard<std::mutex> lock(ring.mu);
  return ring.first + ring.lines.size();
}

std::string LogSince(uint64_t mark, size_t maxLines) {
  LogRing &ring = Ring();
  std::lock_guard<std::mutex> lock(ring.mu);
  uint64_t end = ring.first + ring.lines.size();
  if (mark >= end) return "";
  uint64_t from = std::max(mark, ring.first);
  if (end - from > maxLines) from = end - maxLines;
  std::string out;
  for (uint64_t i = from; i < end; i++) {
    if (!out.empty()) out += '\n';
    out += ring.lines[i - ring.first];
  }
  return out;
}

std::string ErrnoCode(int err) {
  switch (err) {
    case 524: return "ENOTSUPP";  // kernel-internal, leaks out of the bpf syscall
    case LIBBPF_ERRNO__LIBELF: return "LIBBPF_ERRNO__LIBELF";
    case LIBBPF_ERRNO__FORMAT: return "LIBBPF_ERRNO__FORMAT";
    case LIBBPF_ERRNO__KVERSION: return "LIBBPF_ERRNO__KVERSION";
    case LIBBPF_ERRNO__ENDIAN: return "LIBBPF_ERRNO__ENDIAN";
    case LIBBPF_ERRNO__INTERNAL: return "LIBBPF_ERRNO__INTERNAL";
    case LIBBPF_ERRNO__RELOC: return "LIBBPF_ERRNO__RELOC";
    case LIBBPF_ERRNO__LOAD: return "LIBBPF_ERRNO__LOAD";
    case LIBBPF_ERRNO__VERIFY: return "LIBBPF_ERRNO__VERIFY";
    case LIBBPF_ERRNO__PROG2BIG: return "LIBBPF_ERRNO__PROG2BIG";
    case LIBBPF_ERRNO__KVER: return "LIBBPF_ERRNO__KVER";
    case LIBBPF_ERRNO__PROGTYPE: return "LIBBPF_ERRNO__PROGTYPE";
    case LIBBPF_ERRNO__WRNGPID: return "LIBBPF_ERRNO__WRNGPID";
    case LIBBPF_ERRNO__INVSEQ: return "LIBBPF_ERRNO__INVSEQ";
    case LIBBPF_ERRNO__NLPARSE: return "LIBBPF_ERRNO__NLPARSE";
    default: break;
  }
  const char *name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}

std::string ErrnoText(int err) {
  if (err == 524) return "Operation not supported by this map or program type";
  char buf[256];
  libbpf_strerror(err, buf, sizeof(buf));
  return buf;
}

void SetErrorClass(Napi::Env env, Napi::Function ctor) {
  Data(env).errorClass = Napi::Persistent(ctor);
}

std::string ComposeMessage(int err, const std::string &context, uint64_t mark) {
  std::string msg = context + ": " + ErrnoText(err) + " (" + ErrnoCode(err) + ")";
  if (mark != UINT64_MAX) {
    std::string log = LogSince(mark);
    if (!log.empty()) msg += "\n" + log;
  }
  return msg;
}

Napi::Error MakeErrorRaw(Napi::Env env, int err, const std::string &message) {
  AddonData &data = Data(env);
  std::string code = ErrnoCode(err);
  if (!data.errorClass.IsEmpty()) {
    Napi::Object obj = data.errorClass.New({Napi::String::New(env, message),
                                            Napi::Number::New(env, err),
                                            Napi::String::New(env, code)});
    return Napi::Error(env, obj);
  }
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, code));
  return e;
}

Napi::Error MakeError(Napi::Env env, int err, const std::string &context, uint64_t mark) {
  return MakeErrorRaw(env, err, ComposeMessage(err, context, mark));
}

void Throw(Napi::Env env, int err, const std::string &context, uint64_t mark) {
  throw MakeError(env, err, context, mark);
}

void ThrowInvalid(Napi::Env env, const std::string &message) {
  throw MakeErrorRaw(env, EINVAL, message);
}

}  // namespace pharos
