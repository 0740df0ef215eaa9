// The liveness keeper: a native thread that refreshes the XDP responder's
// liveness stamp (ph_liveness, CLOCK_MONOTONIC ns) on its own clock, so
// JavaScript work that holds the event loop for a while (a large reconcile,
// a scrape) cannot silence every announced address. It stamps only while
// JavaScript has shown itself alive (pet()) within the watchdog window: a
// wedged agent still falls silent, just not a busy one.
#include <bpf/bpf.h>
#include <napi.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "args.h"
#include "bindings.h"
#include "errors.h"

namespace pharos {

namespace {

int64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

class Keeper {
 public:
  Keeper(int fd, int64_t periodNs, int64_t watchdogNs) : fd_(fd), periodNs_(periodNs), watchdogNs_(watchdogNs) {
    lastPetNs_ = MonotonicNs();
    thread_ = std::thread([this] { Run(); });
  }

  ~Keeper() { Stop(); }

  void Pet() { lastPetNs_.store(MonotonicNs(), std::memory_order_relaxed); }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  uint64_t stamps() const { return stamps_.load(); }
  uint64_t withheld() const { return withheld_.load(); }
  uint64_t failures() const { return failures_.load(); }
  int lastError() const { return lastError_.load(); }
  int64_t lastStampNs() const { return lastStampNs_.load(); }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopped_) {
      int64_t now = MonotonicNs();
      if (now - lastPetNs_.load(std::memory_order_relaxed) <= watchdogNs_) {
        uint32_t key = 0;
        uint64_t stamp = static_cast<uint64_t>(now);
        if (bpf_map_update_elem(fd_, &key, &stamp, BPF_ANY) == 0) {
          stamps_++;
          lastStampNs_ = now;
        } else {
          failures_++;
          lastError_ = errno;
        }
      } else {
        withheld_++;
      }
      cv_.wait_for(lock, std::chrono::nanoseconds(periodNs_), [this] { return stopped_; });
    }
  }

  int fd_;
  const int64_t periodNs_, watchdogNs_;
  std::atomic<int64_t> lastPetNs_{0}, lastStampNs_{0};
  std::atomic<uint64_t> stamps_{0}, withheld_{0}, failures_{0};
  std::atomic<int> lastError_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  std::thread thread_;
};

Keeper *KeeperOf(const Napi::CallbackInfo &info) {
  auto *k = static_cast<Keeper *>(info.Data());
  return k;
}

}  // namespace

// livenessKeeper(mapFd, periodMs, watchdogMs): starts the thread on a dup of
// mapFd (an array map whose key 0 holds the u64 stamp) and returns
// { pet(), stop(), stats() }. The thread also stops when the object is
// collected.
Napi::Value LivenessKeeper(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int mapFd = ArgInt(ArgAt(info, 0), "livenessKeeper: mapFd", 0, INT32_MAX);
  int periodMs = ArgInt(ArgAt(info, 1), "livenessKeeper: periodMs", 10, 60000);
  int watchdogMs = ArgInt(ArgAt(info, 2), "livenessKeeper: watchdogMs", 100, 3600000);
  int fd = dup(mapFd);
  if (fd < 0) Throw(env, errno, "livenessKeeper: dup of map fd " + std::to_string(mapFd));
  auto *keeper = new Keeper(fd, static_cast<int64_t>(periodMs) * 1000000LL, static_cast<int64_t>(watchdogMs) * 1000000LL);

  Napi::Object out = Napi::Object::New(env);
  out.Set("pet", Napi::Function::New(env, [](const Napi::CallbackInfo &i) {
    KeeperOf(i)->Pet();
    return i.Env().Undefined();
  }, "pet", keeper));
  out.Set("stop", Napi::Function::New(env, [](const Napi::CallbackInfo &i) {
    KeeperOf(i)->Stop();
    return i.Env().Undefined();
  }, "stop", keeper));
  out.Set("stats", Napi::Function::New(env, [](const Napi::CallbackInfo &i) {
    Keeper *k = KeeperOf(i);
    Napi::Object s = Napi::Object::New(i.Env());
    s.Set("stamps", Napi::Number::New(i.Env(), static_cast<double>(k->stamps())));
    s.Set("withheld", Napi::Number::New(i.Env(), static_cast<double>(k->withheld())));
    s.Set("failures", Napi::Number::New(i.Env(), static_cast<double>(k->failures())));
    s.Set("lastError", Napi::Number::New(i.Env(), k->lastError()));
    s.Set("lastStampNs", Napi::BigInt::New(i.Env(), static_cast<int64_t>(k->lastStampNs())));
    return s;
  }, "stats", keeper));
  // Owned by the returned object: collected (or the environment torn down) → thread stopped, fd closed.
  out.AddFinalizer([](Napi::Env, Keeper *k) { delete k; }, keeper);
  return out;
}

}  // namespace pharos
