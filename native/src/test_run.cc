// BPF_PROG_TEST_RUN, synchronously or on a worker thread (long live-frames
// generator runs must not block the event loop).
#include <bpf/bpf.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "args.h"
#include "bindings.h"
#include "errors.h"

namespace pharos {

namespace {

constexpr uint32_t kLiveFrames = 2;  // BPF_F_TEST_XDP_LIVE_FRAMES

// Inputs copied out of JS so the run can happen off the JS thread.
struct RunRequest {
  int progFd = -1;
  std::vector<uint8_t> data;
  std::vector<uint8_t> ctxIn;
  uint32_t dataOutSize = 0;
  int repeat = 0;
  uint32_t flags = 0;
  uint32_t batchSize = 0;
  std::string netns;
};

struct RunResult {
  int err = 0;  // positive errno, 0 on success
  std::string message;
  uint32_t retval = 0;
  uint32_t duration = 0;
  std::vector<uint8_t> dataOut;
};

RunRequest ParseRequest(const Napi::CallbackInfo &info, const char *fn) {
  Napi::Env env = info.Env();
  RunRequest r;
  r.progFd = ArgInt(ArgAt(info, 0), std::string(fn) + ": progFd", 0, INT32_MAX);
  Napi::Value optsValue = ArgAt(info, 1);
  if (!optsValue.IsObject()) ThrowInvalid(env, std::string(fn) + ": opts must be an object");
  Napi::Object opts = optsValue.As<Napi::Object>();
  Napi::Buffer<uint8_t> data = ArgBuffer(opts.Get("data"), std::string(fn) + ": opts.data");
  r.data.assign(data.Data(), data.Data() + data.Length());
  if (!IsAbsent(opts.Get("ctxIn"))) {
    Napi::Buffer<uint8_t> ctx = ArgBuffer(opts.Get("ctxIn"), std::string(fn) + ": opts.ctxIn");
    r.ctxIn.assign(ctx.Data(), ctx.Data() + ctx.Length());
  }
  r.dataOutSize = OptInt(opts.Get("dataOutSize"), std::string(fn) + ": opts.dataOutSize", 0,
                         64 * 1024 * 1024, static_cast<int64_t>(r.data.size()) + 256);
  r.repeat = OptInt(opts.Get("repeat"), std::string(fn) + ": opts.repeat", 0, INT32_MAX, 0);
  r.flags = OptInt(opts.Get("flags"), std::string(fn) + ": opts.flags", 0, UINT32_MAX, 0);
  r.batchSize = OptInt(opts.Get("batchSize"), std::string(fn) + ": opts.batchSize", 0, UINT32_MAX, 0);
  r.netns = OptString(opts.Get("netns"), std::string(fn) + ": opts.netns").value_or("");
  return r;
}

RunResult Run(const RunRequest &r) {
  RunResult res;
  NetnsGuard guard;
  std::string error;
  int err = guard.Enter(r.netns, &error);
  if (err != 0) {
    res.err = err;
    res.message = ComposeMessage(err, error, UINT64_MAX);
    return res;
  }
  // Live frames go out as real packets: the kernel refuses data_out then.
  bool live = (r.flags & kLiveFrames) != 0;
  if (!live) res.dataOut.resize(r.dataOutSize);
  struct bpf_test_run_opts opts;
  memset(&opts, 0, sizeof(opts));
  opts.sz = sizeof(opts);
  opts.data_in = r.data.data();
  opts.data_size_in = r.data.size();
  if (!live) {
    opts.data_out = res.dataOut.data();
    opts.data_size_out = res.dataOut.size();
  }
  if (!r.ctxIn.empty()) {
    opts.ctx_in = r.ctxIn.data();
    opts.ctx_size_in = r.ctxIn.size();
  }
  opts.repeat = r.repeat;
  opts.flags = r.flags;
  opts.batch_size = r.batchSize;
  if (bpf_prog_test_run_opts(r.progFd, &opts) != 0) {
    res.err = errno;
    std::string context = "testRun on program fd " + std::to_string(r.progFd);
    if (!r.netns.empty()) context += " in netns " + r.netns;
    if (res.err == ENOSPC) {
      context += ": output packet is " + std::to_string(opts.data_size_out) +
                 " bytes, more than dataOutSize " + std::to_string(r.dataOutSize);
    } else if (res.err == EINVAL && r.data.size() < 14) {
      context += ": input is " + std::to_string(r.data.size()) + " bytes (XDP/tc need at least 14)";
    }
    res.message = ComposeMessage(res.err, context, UINT64_MAX);
    return res;
  }
  res.retval = opts.retval;
  res.duration = opts.duration;
  if (!live) res.dataOut.resize(opts.data_size_out);
  return res;
}

Napi::Object ResultToJs(Napi::Env env, const RunResult &res) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("retval", res.retval);
  out.Set("duration", res.duration);
  out.Set("dataOut", Napi::Buffer<uint8_t>::Copy(env, res.dataOut.data(), res.dataOut.size()));
  return out;
}

class TestRunWorker : public Napi::AsyncWorker {
 public:
  TestRunWorker(Napi::Env env, RunRequest request)
      : Napi::AsyncWorker(env, "pharos:testRun"), request_(std::move(request)), deferred_(env) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { result_ = Run(request_); }  // worker thread: setns happens here

  void OnOK() override {
    Napi::Env env = Env();
    if (result_.err != 0) {
      deferred_.Reject(MakeErrorRaw(env, result_.err, result_.message).Value());
    } else {
      deferred_.Resolve(ResultToJs(env, result_));
    }
  }

 private:
  RunRequest request_;
  RunResult result_;
  Napi::Promise::Deferred deferred_;
};

}  // namespace

Napi::Value TestRun(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RunResult res = Run(ParseRequest(info, "testRun"));
  if (res.err != 0) throw MakeErrorRaw(env, res.err, res.message);
  return ResultToJs(env, res);
}

Napi::Value TestRunAsync(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto *worker = new TestRunWorker(env, ParseRequest(info, "testRunAsync"));
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // deletes itself when done
  return promise;
}

}  // namespace pharos
