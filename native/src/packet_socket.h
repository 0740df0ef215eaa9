// Raw Ethernet frames out of one interface through an AF_PACKET socket that
// is opened once and kept (NativePacketSocket), and the one-shot sendFrame.
//
// Why kept: closing a packet socket waits for an RCU grace period
// (packet_release -> synchronize_net, ~12 ms here), so a socket per frame
// caps a sender at ~80 frames/s and blocks the JS thread meanwhile.
#pragma once

#include <napi.h>

#include <optional>
#include <string>

namespace pharos {

class NativePacketSocket : public Napi::ObjectWrap<NativePacketSocket> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Opens and binds the socket inside `netns` (empty: this thread's own).
  static Napi::Object Open(Napi::Env env, int ifindex, const std::optional<std::string> &netns);
  explicit NativePacketSocket(const Napi::CallbackInfo &info);
  ~NativePacketSocket() override;

 private:
  int Fd(Napi::Env env) const;  // throws EBADF naming the interface when closed

  Napi::Value GetIfindex(const Napi::CallbackInfo &info);
  Napi::Value Send(const Napi::CallbackInfo &info);
  Napi::Value SendMany(const Napi::CallbackInfo &info);
  Napi::Value Close(const Napi::CallbackInfo &info);

  int fd_ = -1;
  int ifindex_ = 0;
  std::string label_;  // "packet socket on ifindex 7 (veth0) in netns /run/netns/x"
};

}  // namespace pharos
