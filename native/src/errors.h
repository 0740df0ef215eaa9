// Errors and libbpf's log.
//
// libbpf reports through a print callback; we keep its recent WARN lines in
// a ring buffer so an error thrown to JS can carry the lines logged while the
// failing operation ran (e.g. the verifier log's tail on a load failure).
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

namespace pharos {

// Installs the libbpf print callback (once per process).
void InstallLibbpfLog();

// Sequence number of the next log line; take one before an operation and pass
// it to the error helpers to attach only what that operation logged.
uint64_t LogMark();
// Last lines (at most `maxLines`) logged since `mark`, newline-separated.
std::string LogSince(uint64_t mark, size_t maxLines = 30);

// Symbolic name of an errno ('ENOENT'), including libbpf's own (4000+) codes.
std::string ErrnoCode(int err);
// Human text for an errno (libbpf_strerror, which knows libbpf's codes too).
std::string ErrnoText(int err);

// Keeps the JS error class (BpfError) registered by the TS wrapper.
void SetErrorClass(Napi::Env env, Napi::Function ctor);

// Builds a BpfError(message, errno, code). `err` is a positive errno.
// The message is "<context>: <strerror>" plus libbpf's lines since `mark`.
Napi::Error MakeError(Napi::Env env, int err, const std::string &context,
                      uint64_t mark = UINT64_MAX);
// Same, with a message used verbatim (no strerror appended).
Napi::Error MakeErrorRaw(Napi::Env env, int err, const std::string &message);

// Throws (C++ exception, turned into a JS exception by node-addon-api).
[[noreturn]] void Throw(Napi::Env env, int err, const std::string &context,
                        uint64_t mark = UINT64_MAX);
[[noreturn]] void ThrowInvalid(Napi::Env env, const std::string &message);

// Composes the message the way MakeError does; usable off the JS thread.
std::string ComposeMessage(int err, const std::string &context, uint64_t mark);

}  // namespace pharos
