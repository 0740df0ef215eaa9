// TCP sockets for BGP sessions: TCP MD5 signatures (RFC 2385), sockets
// created before connect, TTL; the received-TTL filter of BFD's UDP
// sockets. Raw frames are in packet_socket.cc.
#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "args.h"
#include "bindings.h"
#include "errors.h"

namespace pharos {

// setTcpMd5(fd, peer, key): the key for segments to/from `peer`; "" removes it.
Napi::Value SetTcpMd5(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(ArgAt(info, 0), "setTcpMd5: fd", 0, INT32_MAX);
  std::string peer = ArgString(ArgAt(info, 1), "setTcpMd5: peer");
  std::string key = ArgString(ArgAt(info, 2), "setTcpMd5: key");
  std::string what = "setTcpMd5 on fd " + std::to_string(fd) + " for " + peer;
  if (key.size() > TCP_MD5SIG_MAXKEYLEN) {
    ThrowInvalid(env, what + ": key is " + std::to_string(key.size()) + " bytes, at most " +
                          std::to_string(TCP_MD5SIG_MAXKEYLEN));
  }
  int domain = 0;
  socklen_t len = sizeof(domain);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) Throw(env, errno, what);

  struct tcp_md5sig sig;
  memset(&sig, 0, sizeof(sig));
  struct in_addr v4;
  struct in6_addr v6;
  if (inet_pton(AF_INET, peer.c_str(), &v4) == 1) {
    if (domain == AF_INET6) {
      // A dual-stack socket sees an IPv4 peer as ::ffff:a.b.c.d.
      auto *sa = reinterpret_cast<struct sockaddr_in6 *>(&sig.tcpm_addr);
      sa->sin6_family = AF_INET6;
      sa->sin6_addr.s6_addr[10] = 0xff;
      sa->sin6_addr.s6_addr[11] = 0xff;
      memcpy(&sa->sin6_addr.s6_addr[12], &v4, 4);
    } else {
      auto *sa = reinterpret_cast<struct sockaddr_in *>(&sig.tcpm_addr);
      sa->sin_family = AF_INET;
      sa->sin_addr = v4;
    }
  } else if (inet_pton(AF_INET6, peer.c_str(), &v6) == 1) {
    if (domain != AF_INET6) {
      ThrowInvalid(env, what + ": an IPv6 peer needs an IPv6 socket");
    }
    auto *sa = reinterpret_cast<struct sockaddr_in6 *>(&sig.tcpm_addr);
    sa->sin6_family = AF_INET6;
    sa->sin6_addr = v6;
  } else {
    ThrowInvalid(env, what + ": peer is not an IPv4 or IPv6 address");
  }
  sig.tcpm_keylen = key.size();
  memcpy(sig.tcpm_key, key.data(), key.size());
  if (setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, &sig, sizeof(sig)) != 0) {
    // Removing a key that is not there is already the wanted state.
    if (key.empty() && errno == ENOENT) return env.Undefined();
    Throw(env, errno, what);
  }
  return env.Undefined();
}

// tcpSocket(family): a fresh non-blocking TCP socket fd, for options that
// must be set before connect (TCP_MD5SIG); hand it to `new net.Socket({ fd })`.
Napi::Value TcpSocket(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string family = ArgString(ArgAt(info, 0), "tcpSocket: family");
  int domain;
  if (family == "ipv4") {
    domain = AF_INET;
  } else if (family == "ipv6") {
    domain = AF_INET6;
  } else {
    ThrowInvalid(env, "tcpSocket: family must be 'ipv4' or 'ipv6', got '" + family + "'");
  }
  int fd = socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) Throw(env, errno, "tcpSocket(" + family + ")");
  return Napi::Number::New(env, fd);
}

// setTtl(fd, ttl): the unicast TTL / hop limit of a socket's own packets
// (eBGP multihop: 1 keeps a session to directly connected peers). The family
// comes from getsockname; an IPv6 socket also gets IP_TTL, because IPv4
// peers of a dual-stack socket (::ffff:a.b.c.d) are sent with the IPv4 TTL.
Napi::Value SetTtl(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(ArgAt(info, 0), "setTtl: fd", 0, INT32_MAX);
  int ttl = ArgInt(ArgAt(info, 1), "setTtl: ttl", 1, 255);
  std::string what = "setTtl(" + std::to_string(ttl) + ") on fd " + std::to_string(fd);
  struct sockaddr_storage local;
  socklen_t len = sizeof(local);
  memset(&local, 0, sizeof(local));
  if (getsockname(fd, reinterpret_cast<struct sockaddr *>(&local), &len) != 0) Throw(env, errno, what);
  if (local.ss_family == AF_INET) {
    if (setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)) != 0) Throw(env, errno, what + ": IP_TTL");
  } else if (local.ss_family == AF_INET6) {
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof(ttl)) != 0) {
      Throw(env, errno, what + ": IPV6_UNICAST_HOPS");
    }
    if (setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl)) != 0) Throw(env, errno, what + ": IP_TTL");
  } else {
    ThrowInvalid(env, what + ": not an IPv4 or IPv6 socket (family " + std::to_string(local.ss_family) + ")");
  }
  return env.Undefined();
}

// attachTtlFilter(fd, ttl): a classic BPF socket filter that keeps the
// datagrams received with TTL / hop limit `ttl` whole and cuts every other
// one to its UDP header (RFC 5881 §5 / GTSM: single-hop BFD only accepts
// 255). Node's dgram sockets deliver no TTL, and IP_MINTTL does not apply to
// UDP, so the check runs in the kernel. A UDP socket's filter sees the
// packet from its UDP header (the network header is at SKF_NET_OFF) and
// the kernel keeps at least that header, so a cut datagram arrives empty —
// shorter than any BFD packet — and the drop can be counted against its
// source. The IP version is read from the packet, so a dual-stack socket's
// IPv4 packets are checked too.
Napi::Value AttachTtlFilter(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(ArgAt(info, 0), "attachTtlFilter: fd", 0, INT32_MAX);
  int ttl = ArgInt(ArgAt(info, 1), "attachTtlFilter: ttl", 1, 255);
  const uint32_t net = static_cast<uint32_t>(SKF_NET_OFF);
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, net + 0),                // version nibble
      BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x40, 0, 2),            // IPv4?
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, net + 8),                // IPv4 TTL
      BPF_JUMP(BPF_JMP | BPF_JA, 1, 0, 0),
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, net + 7),                // IPv6 hop limit
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(ttl), 0, 1),
      BPF_STMT(BPF_RET | BPF_K, 0xffffffff),                      // whole datagram
      BPF_STMT(BPF_RET | BPF_K, 8),                               // the UDP header only
  };
  struct sock_fprog prog = {static_cast<unsigned short>(sizeof(code) / sizeof(code[0])), code};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) != 0) {
    Throw(env, errno, "attachTtlFilter(" + std::to_string(ttl) + ") on fd " + std::to_string(fd));
  }
  return env.Undefined();
}

}  // namespace pharos
