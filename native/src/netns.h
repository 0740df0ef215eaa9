// Running one operation inside another network namespace.
//
// setns(CLONE_NEWNET) is per thread: the guard switches the calling thread
// (the JS thread for synchronous calls, the worker thread for async ones) and
// switches it back when it goes out of scope. Sockets and netlink requests
// made in between (if_nametoindex, XDP/tc attach, AF_PACKET) belong to the
// target namespace; the mount namespace (bpffs pins) is untouched.
#pragma once

#include <string>

namespace pharos {

class NetnsGuard {
 public:
  NetnsGuard() = default;
  ~NetnsGuard();
  NetnsGuard(const NetnsGuard &) = delete;
  NetnsGuard &operator=(const NetnsGuard &) = delete;

  // Enters the namespace at `path` (e.g. /run/netns/NAME); an empty path is a
  // no-op. Returns 0 or a positive errno; `error` then says which step failed.
  int Enter(const std::string &path, std::string *error);

 private:
  int savedFd_ = -1;
};

}  // namespace pharos
