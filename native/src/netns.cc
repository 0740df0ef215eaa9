#include "netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace pharos {

int NetnsGuard::Enter(const std::string &path, std::string *error) {
  if (path.empty()) return 0;
  // The calling thread's own namespace, not the process leader's.
  std::string self = "/proc/self/task/" + std::to_string(syscall(SYS_gettid)) + "/ns/net";
  int saved = open(self.c_str(), O_RDONLY | O_CLOEXEC);
  if (saved < 0) {
    int err = errno;
    *error = "netns: cannot open " + self;
    return err;
  }
  int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int err = errno;
    close(saved);
    *error = "netns: cannot open " + path;
    return err;
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    int err = errno;
    close(target);
    close(saved);
    *error = "netns: setns into " + path + " failed";
    return err;
  }
  close(target);
  savedFd_ = saved;
  return 0;
}

NetnsGuard::~NetnsGuard() {
  if (savedFd_ < 0) return;
  if (setns(savedFd_, CLONE_NEWNET) != 0) {
    // A thread left in a foreign namespace would silently misdirect every
    // later socket and netlink call of this process: stop instead.
    fprintf(stderr, "pharos_native: cannot return to the original netns: %s\n", strerror(errno));
    abort();
  }
  close(savedFd_);
}

}  // namespace pharos
