#include "packet_socket.h"

#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include "addon_data.h"
#include "args.h"
#include "bindings.h"
#include "errors.h"

namespace pharos {

namespace {

// sendmmsg takes at most UIO_MAXIOV messages per call.
constexpr size_t kMaxFramesPerCall = 1024;

std::string InNetns(const std::optional<std::string> &netns) {
  return netns ? " in netns " + *netns : "";
}

// A send-only packet socket bound to `ifindex`, in the calling thread's
// netns. Protocol 0 registers no receive hook, so it never queues frames;
// binding checks the interface exists now rather than at the first send.
// Returns the fd, or -1 with errno set and `step` naming the failed call.
int OpenBoundSocket(int ifindex, const char **step) {
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *step = "socket(AF_PACKET)";
    return -1;
  }
  struct sockaddr_ll addr;
  memset(&addr, 0, sizeof(addr));
  addr.sll_family = AF_PACKET;
  addr.sll_ifindex = ifindex;
  if (bind(fd, reinterpret_cast<struct sockaddr *>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    close(fd);
    errno = err;
    *step = "bind";
    return -1;
  }
  return fd;
}

// Where one frame goes: the interface, and the frame's own ethertype as the
// skb protocol (what qdiscs and tc filters on the way out classify by).
struct sockaddr_ll FrameAddress(const uint8_t *frame, int ifindex) {
  struct sockaddr_ll addr;
  memset(&addr, 0, sizeof(addr));
  addr.sll_family = AF_PACKET;
  addr.sll_ifindex = ifindex;
  addr.sll_halen = ETH_ALEN;
  memcpy(&addr.sll_protocol, frame + 12, 2);  // already network order
  memcpy(addr.sll_addr, frame, ETH_ALEN);
  return addr;
}

template <typename Describe>
Napi::Buffer<uint8_t> ArgFrame(const Napi::Value &v, Describe describe) {
  Napi::Buffer<uint8_t> frame = ArgBufferNamed(v, describe);
  if (frame.Length() < ETH_HLEN) {
    ThrowInvalid(v.Env(), describe() + " is " + std::to_string(frame.Length()) +
                              " bytes, an Ethernet header alone is 14");
  }
  return frame;
}

// A full device queue or socket buffer: nothing is wrong, send later.
bool QueueFull(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS; }

}  // namespace

Napi::Function NativePacketSocket::Define(Napi::Env env) {
  return DefineClass(env, "NativePacketSocket",
                     {
                         InstanceAccessor<&NativePacketSocket::GetIfindex>("ifindex"),
                         InstanceMethod<&NativePacketSocket::Send>("send"),
                         InstanceMethod<&NativePacketSocket::SendMany>("sendMany"),
                         InstanceMethod<&NativePacketSocket::Close>("close"),
                     });
}

NativePacketSocket::NativePacketSocket(const Napi::CallbackInfo &info)
    : Napi::ObjectWrap<NativePacketSocket>(info) {}

NativePacketSocket::~NativePacketSocket() {
  if (fd_ >= 0) close(fd_);
}

Napi::Object NativePacketSocket::Open(Napi::Env env, int ifindex, const std::optional<std::string> &netns) {
  NetnsGuard guard;
  EnterNetns(env, guard, netns);
  std::string label = "packet socket on " + DescribeIfindex(ifindex) + InNetns(netns);
  const char *step = "";
  int fd = OpenBoundSocket(ifindex, &step);
  if (fd < 0) Throw(env, errno, label + ": " + step);
  Napi::Object obj = Data(env).packetSocketClass.New({});
  NativePacketSocket *self = Unwrap(obj);
  self->fd_ = fd;
  self->ifindex_ = ifindex;
  self->label_ = label;
  return obj;
}

// packetSocket(ifindex, netns?) -> NativePacketSocket
Napi::Value OpenPacketSocket(const Napi::CallbackInfo &info) {
  int ifindex = ArgInt(ArgAt(info, 0), "packetSocket: ifindex", 1, INT32_MAX);
  std::optional<std::string> netns = OptString(ArgAt(info, 1), "packetSocket: netns");
  return NativePacketSocket::Open(info.Env(), ifindex, netns);
}

int NativePacketSocket::Fd(Napi::Env env) const {
  if (fd_ < 0) throw MakeErrorRaw(env, EBADF, label_ + " is closed");
  return fd_;
}

Napi::Value NativePacketSocket::GetIfindex(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), ifindex_);
}

// send(frame): one complete Ethernet frame; a full queue is an EAGAIN/ENOBUFS error.
Napi::Value NativePacketSocket::Send(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Buffer<uint8_t> frame = ArgFrame(ArgAt(info, 0), [this] { return label_ + ": send: frame"; });
  int fd = Fd(env);
  struct sockaddr_ll addr = FrameAddress(frame.Data(), ifindex_);
  ssize_t sent;
  do {
    sent = sendto(fd, frame.Data(), frame.Length(), 0, reinterpret_cast<struct sockaddr *>(&addr),
                  sizeof(addr));
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) Throw(env, errno, label_ + ": send");
  return env.Undefined();
}

// sendMany(frames) -> how many frames, from the first, were sent (sendmmsg).
// Stops early when the device queue is full (the caller sends the rest
// later) or at a frame the kernel refuses; throws only when not even the
// first frame went out for a reason other than a full queue.
Napi::Value NativePacketSocket::SendMany(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Value framesValue = ArgAt(info, 0);
  if (!framesValue.IsArray()) ThrowInvalid(env, label_ + ": sendMany: frames must be an array of Buffers");
  Napi::Array frames = framesValue.As<Napi::Array>();
  size_t count = frames.Length();
  std::vector<struct sockaddr_ll> addrs(count);
  std::vector<struct iovec> iovs(count);
  std::vector<struct mmsghdr> msgs(count);
  for (size_t i = 0; i < count; i++) {
    Napi::Buffer<uint8_t> frame = ArgFrame(frames.Get(static_cast<uint32_t>(i)), [this, i] {
      return label_ + ": sendMany: frames[" + std::to_string(i) + "]";
    });
    // The Buffers stay referenced by `frames` for the whole call.
    addrs[i] = FrameAddress(frame.Data(), ifindex_);
    iovs[i] = {frame.Data(), frame.Length()};
    memset(&msgs[i], 0, sizeof(msgs[i]));
    msgs[i].msg_hdr.msg_name = &addrs[i];
    msgs[i].msg_hdr.msg_namelen = sizeof(addrs[i]);
    msgs[i].msg_hdr.msg_iov = &iovs[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int fd = Fd(env);
  size_t sent = 0;
  while (sent < count) {
    unsigned batch = static_cast<unsigned>(std::min(count - sent, kMaxFramesPerCall));
    int n = sendmmsg(fd, msgs.data() + sent, batch, 0);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (sent == 0 && !QueueFull(err)) {
        Throw(env, err, label_ + ": sendMany: frame 0 of " + std::to_string(count));
      }
      break;  // the next call starts at the frame that failed and reports it
    }
    sent += static_cast<size_t>(n);
    if (static_cast<unsigned>(n) < batch) break;
  }
  return Napi::Number::New(env, static_cast<double>(sent));
}

// Idempotent. Costs one RCU grace period in the kernel, once.
Napi::Value NativePacketSocket::Close(const Napi::CallbackInfo &info) {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  return info.Env().Undefined();
}

// sendFrame(ifindex, frame, netns?): one frame through a socket made for it
// (pays the close's grace period each time: use packetSocket for more).
Napi::Value SendFrame(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int ifindex = ArgInt(ArgAt(info, 0), "sendFrame: ifindex", 1, INT32_MAX);
  Napi::Buffer<uint8_t> frame = ArgFrame(ArgAt(info, 1), [] { return std::string("sendFrame: frame"); });
  std::optional<std::string> netns = OptString(ArgAt(info, 2), "sendFrame: netns");
  NetnsGuard guard;
  EnterNetns(env, guard, netns);
  std::string what = "sendFrame on " + DescribeIfindex(ifindex) + InNetns(netns);
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) Throw(env, errno, what + ": socket(AF_PACKET)");
  struct sockaddr_ll addr = FrameAddress(frame.Data(), ifindex);
  ssize_t sent = sendto(fd, frame.Data(), frame.Length(), 0,
                        reinterpret_cast<struct sockaddr *>(&addr), sizeof(addr));
  int err = errno;
  close(fd);
  if (sent < 0) Throw(env, err, what);
  if (static_cast<size_t>(sent) != frame.Length()) {
    throw MakeErrorRaw(env, EIO, what + ": sent " + std::to_string(sent) + " of " +
                                     std::to_string(frame.Length()) + " bytes");
  }
  return env.Undefined();
}

}  // namespace pharos
