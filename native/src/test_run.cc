// BPF_PROG_TEST_RUN, synchronously or on a worker thread (long live-frames
// generator runs must not block the event loop).
#include <bpf/bpf.h>
#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
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
  bool interrupted = false;
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

// Stopping a long run early: the kernel's test-run loop ends with EINTR when
// a signal is pending for the running thread, so the canceller signals the
// worker thread (SIGURG: ignored by default, unused by Node). The JS side
// repeats cancel() until the run ends, which covers a signal landing just
// before the syscall starts.
constexpr int kInterruptSignal = SIGURG;

struct Cancellation {
  std::mutex mu;
  bool requested = false;
  bool running = false;
  pthread_t thread{};
};

void NoopHandler(int) {}

void InstallInterruptHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current;
    if (sigaction(kInterruptSignal, nullptr, &current) == 0 && current.sa_handler != SIG_DFL &&
        current.sa_handler != SIG_IGN) {
      return;  // someone handles it already: any handler interrupts the syscall
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = NoopHandler;  // no SA_RESTART; test runs return EINTR anyway
    sigemptyset(&sa.sa_mask);
    sigaction(kInterruptSignal, &sa, nullptr);
  });
}

RunResult Run(const RunRequest &r, Cancellation *cancel = nullptr) {
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
  sigset_t interruptible, previous;
  if (cancel != nullptr) {
    std::lock_guard<std::mutex> lock(cancel->mu);
    if (cancel->requested) {
      res.interrupted = true;
      return res;
    }
    cancel->running = true;
    cancel->thread = pthread_self();
    sigemptyset(&interruptible);
    sigaddset(&interruptible, kInterruptSignal);
    pthread_sigmask(SIG_UNBLOCK, &interruptible, &previous);
  }
  int rc = bpf_prog_test_run_opts(r.progFd, &opts);
  int runErr = rc == 0 ? 0 : errno;
  if (cancel != nullptr) {
    std::lock_guard<std::mutex> lock(cancel->mu);
    cancel->running = false;
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    if (runErr == EINTR && cancel->requested) {
      res.interrupted = true;
      res.dataOut.clear();
      return res;
    }
  }
  if (rc != 0) {
    res.err = runErr;
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
  if (res.interrupted) out.Set("interrupted", true);
  return out;
}

class TestRunWorker : public Napi::AsyncWorker {
 public:
  TestRunWorker(Napi::Env env, RunRequest request, std::shared_ptr<Cancellation> cancel)
      : Napi::AsyncWorker(env, "pharos:testRun"),
        request_(std::move(request)),
        cancel_(std::move(cancel)),
        deferred_(env) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  // Worker thread: the setns and the signal-interruptible syscall happen here.
  void Execute() override { result_ = Run(request_, cancel_.get()); }

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
  std::shared_ptr<Cancellation> cancel_;
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

// testRunAsync(progFd, opts) -> { promise, cancel() }
Napi::Value TestRunAsync(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  InstallInterruptHandler();
  auto cancel = std::make_shared<Cancellation>();
  auto *worker = new TestRunWorker(env, ParseRequest(info, "testRunAsync"), cancel);
  Napi::Object out = Napi::Object::New(env);
  out.Set("promise", worker->Promise());
  out.Set("cancel", Napi::Function::New(env, [cancel](const Napi::CallbackInfo &ci) {
            std::lock_guard<std::mutex> lock(cancel->mu);
            cancel->requested = true;
            if (cancel->running) pthread_kill(cancel->thread, kInterruptSignal);
            return ci.Env().Undefined();
          }, "cancel"));
  worker->Queue();  // deletes itself when done
  return out;
}

}  // namespace pharos
