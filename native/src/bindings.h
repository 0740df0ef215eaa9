// Free functions exported by the addon, grouped by the file that defines them.
#pragma once

#include <napi.h>

#include <optional>
#include <string>

#include "netns.h"

namespace pharos {

// attach.cc
Napi::Value IfIndex(const Napi::CallbackInfo &info);
Napi::Value XdpAttach(const Napi::CallbackInfo &info);
Napi::Value XdpDetach(const Napi::CallbackInfo &info);
Napi::Value XdpQuery(const Napi::CallbackInfo &info);
Napi::Value TcAttach(const Napi::CallbackInfo &info);
Napi::Value TcDetach(const Napi::CallbackInfo &info);
Napi::Value TcQuery(const Napi::CallbackInfo &info);

// cgroup.cc
Napi::Value CgroupLinkAttach(const Napi::CallbackInfo &info);
Napi::Value CgroupLinkDetach(const Napi::CallbackInfo &info);
Napi::Value CgroupQuery(const Napi::CallbackInfo &info);
Napi::Value NetnsCookie(const Napi::CallbackInfo &info);

// test_run.cc
Napi::Value TestRun(const Napi::CallbackInfo &info);
Napi::Value TestRunAsync(const Napi::CallbackInfo &info);

// packet_socket.cc
Napi::Value SendFrame(const Napi::CallbackInfo &info);
Napi::Value OpenPacketSocket(const Napi::CallbackInfo &info);

// neighbours.cc
Napi::Value RouteNextHops(const Napi::CallbackInfo &info);
Napi::Value NeighboursSet(const Napi::CallbackInfo &info);

// sockets.cc
Napi::Value SetTcpMd5(const Napi::CallbackInfo &info);
Napi::Value TcpSocket(const Napi::CallbackInfo &info);
Napi::Value SetTtl(const Napi::CallbackInfo &info);
Napi::Value AttachTtlFilter(const Napi::CallbackInfo &info);

// liveness.cc
Napi::Value LivenessKeeper(const Napi::CallbackInfo &info);

// Enters `netns` (if any) on the calling thread or throws a BpfError.
void EnterNetns(Napi::Env env, NetnsGuard &guard, const std::optional<std::string> &netns);
// "ifindex 7 (veth0)" or "ifindex 7", for messages.
std::string DescribeIfindex(int ifindex);

}  // namespace pharos
