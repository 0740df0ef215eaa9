// Next hops (RTM_GETROUTE) and managed neighbour entries (RTM_NEWNEIGH),
// thousands per call over one rtnetlink socket, on a libuv worker thread:
// the JS thread only parses the arguments and builds the results.
//
// What the requests carry is what iproute2 6.1 sends (checked with strace):
//   ip route get ADDR                    RTM_GETROUTE, RTM_F_LOOKUP_TABLE, RTA_DST
//   ip neigh replace ADDR dev D managed  RTM_NEWNEIGH CREATE|REPLACE, NUD_NONE,
//                                        NDA_FLAGS_EXT = NTF_EXT_MANAGED
//   ip neigh change ADDR dev D nud stale RTM_NEWNEIGH REPLACE, NUD_STALE (drops
//                                        the flag; the kernel ages the entry out)
#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "args.h"
#include "bindings.h"
#include "errors.h"
#include "netlink.h"

// Kernel 5.16 (NDA_FLAGS_EXT); older UAPI headers lack it.
#ifndef NTF_EXT_MANAGED
#define NTF_EXT_MANAGED (1 << 0)
#endif

namespace pharos {

namespace {

struct IpAddress {
  int family = AF_UNSPEC;
  uint8_t bytes[16] = {0};
  size_t len = 0;
  std::string text;  // as the caller wrote it, for messages
};

std::optional<IpAddress> ParseAddress(const std::string &text) {
  IpAddress a;
  a.text = text;
  if (inet_pton(AF_INET, text.c_str(), a.bytes) == 1) {
    a.family = AF_INET;
    a.len = 4;
    return a;
  }
  if (inet_pton(AF_INET6, text.c_str(), a.bytes) == 1) {
    a.family = AF_INET6;
    a.len = 16;
    return a;
  }
  return std::nullopt;
}

std::string FormatAddress(int family, const uint8_t *bytes) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (inet_ntop(family, bytes, buf, sizeof(buf)) == nullptr) return "";
  return buf;
}

// Addresses cross as one '\n'-joined string (one N-API call instead of one
// per element; the TS side checked each is a string without '\n').
// Errors name element i as `what`[i]`suffix`.
std::vector<IpAddress> ArgAddresses(const Napi::Value &joined, const Napi::Value &countValue, const std::string &what,
                                    const char *suffix) {
  Napi::Env env = joined.Env();
  std::string text = ArgString(joined, what);
  size_t count = static_cast<size_t>(ArgInt(countValue, what + " count", 0, INT32_MAX));
  std::vector<IpAddress> out;
  out.reserve(count);
  size_t start = 0;
  while (out.size() < count) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string piece = text.substr(start, end - start);
    std::optional<IpAddress> a = piece.size() < INET6_ADDRSTRLEN ? ParseAddress(piece) : std::nullopt;
    if (!a) {
      ThrowInvalid(env, what + "[" + std::to_string(out.size()) + "]" + suffix + " ('" + piece +
                            "') is not an IPv4 or IPv6 address");
    }
    out.push_back(std::move(*a));
    start = end + 1;
  }
  if (start < text.size() || (count == 0 && !text.empty())) {
    ThrowInvalid(env, what + ": more addresses than the count " + std::to_string(count));
  }
  return out;
}

// "<context>: <the kernel's words or strerror> (ECODE)".
std::string AnswerError(const NetlinkAnswer &answer, const std::string &context) {
  if (answer.kernelMessage.empty()) return ComposeMessage(answer.err, context, UINT64_MAX);
  return context + ": " + answer.kernelMessage + " (" + ErrnoCode(answer.err) + ")";
}

Napi::Array Pair(Napi::Env env, double first, const std::string &second) {
  Napi::Array pair = Napi::Array::New(env, 2);
  pair.Set(0u, first);
  pair.Set(1u, second);
  return pair;
}

// Interface names by index, looked up once per call in the worker's netns.
class InterfaceNames {
 public:
  const std::string &Name(int ifindex) {
    auto it = names_.find(ifindex);
    if (it != names_.end()) return it->second;
    char buf[IF_NAMESIZE] = {0};
    std::string name = if_indextoname(ifindex, buf) != nullptr ? buf : "";
    return names_.emplace(ifindex, name).first->second;
  }
  const std::map<int, std::string> &All() const { return names_; }

 private:
  std::map<int, std::string> names_;
};

// ---- routeNextHops ---------------------------------------------------------

// The codes are indexes into ROUTE_TYPES in src/native/libbpf.ts
// (test/native/netlink.test.ts sees each of them from a real lookup).
enum class RouteType : uint8_t { kUnicast = 0, kLocal = 1, kUnreachable = 2, kOther = 3 };

RouteType FromRtmType(uint8_t type) {
  switch (type) {
    case RTN_UNICAST: return RouteType::kUnicast;
    case RTN_LOCAL: return RouteType::kLocal;
    case RTN_UNREACHABLE:
    case RTN_BLACKHOLE:
    case RTN_PROHIBIT:
    case RTN_THROW: return RouteType::kUnreachable;
    default: return RouteType::kOther;
  }
}

// How a route lookup fails on this kernel (measured with ip route get, v4
// and v6): no route ENETUNREACH, `unreachable` route EHOSTUNREACH,
// `prohibit` EACCES, `blackhole` EINVAL.
RouteType FromLookupError(int err) {
  switch (err) {
    case ENETUNREACH:
    case EHOSTUNREACH:
    case EACCES:
    case EINVAL: return RouteType::kUnreachable;
    default: return RouteType::kOther;
  }
}

struct NextHop {
  RouteType type = RouteType::kOther;
  int ifindex = 0;
  std::string gateway;
  std::string error;
};

struct CallFailure {
  int err = 0;  // the socket or the namespace failed: the promise rejects
  std::string message;
};

struct RouteJob {
  static constexpr const char *kName = "routeNextHops";
  std::vector<IpAddress> addresses;
  std::string netns;
  std::vector<NextHop> hops;
  std::map<int, std::string> devs;  // names of the interfaces in `hops`

  void Run(RouteNetlink &netlink, CallFailure *failure) {
    std::vector<NetlinkMessage> requests;
    requests.reserve(addresses.size());
    for (const IpAddress &a : addresses) {
      struct rtmsg rtm;
      memset(&rtm, 0, sizeof(rtm));
      rtm.rtm_family = static_cast<unsigned char>(a.family);
      rtm.rtm_dst_len = static_cast<unsigned char>(a.len * 8);
      rtm.rtm_flags = RTM_F_LOOKUP_TABLE;
      requests.push_back(NetlinkRequest(RTM_GETROUTE, NLM_F_REQUEST, &rtm, sizeof(rtm))
                             .Attr(RTA_DST, a.bytes, a.len)
                             .Finish());
    }
    std::vector<NetlinkAnswer> answers;
    std::string error;
    int err = netlink.Exchange(requests, &answers, &error);
    if (err != 0) {
      failure->err = err;
      failure->message = ComposeMessage(err, "routeNextHops" + InNetns() + ": " + error, UINT64_MAX);
      return;
    }
    InterfaceNames names;
    hops.resize(addresses.size());
    for (size_t i = 0; i < addresses.size(); i++) {
      const NetlinkAnswer &answer = answers[i];
      NextHop &hop = hops[i];
      if (answer.err != 0) {
        hop.type = FromLookupError(answer.err);
        hop.error = AnswerError(answer, "route to " + addresses[i].text + InNetns());
        continue;
      }
      ParseReply(answer.reply, &hop);
      if (hop.ifindex > 0) names.Name(hop.ifindex);
    }
    devs = names.All();
  }

  static void ParseReply(const std::vector<uint8_t> &reply, NextHop *hop) {
    const auto *h = reinterpret_cast<const struct nlmsghdr *>(reply.data());
    if (reply.size() < NLMSG_LENGTH(sizeof(struct rtmsg)) || h->nlmsg_type != RTM_NEWROUTE) {
      hop->type = RouteType::kOther;
      hop->error = "unexpected answer to RTM_GETROUTE (netlink type " + std::to_string(h->nlmsg_type) + ")";
      return;
    }
    const auto *rtm = static_cast<const struct rtmsg *>(NLMSG_DATA(h));
    hop->type = FromRtmType(rtm->rtm_type);
    const uint8_t *attrs = reply.data() + NLMSG_LENGTH(NLMSG_ALIGN(sizeof(struct rtmsg)));
    size_t attrsLen = h->nlmsg_len - NLMSG_LENGTH(NLMSG_ALIGN(sizeof(struct rtmsg)));
    ForEachAttr(attrs, attrsLen, [&](uint16_t type, const uint8_t *data, size_t len) {
      if (type == RTA_OIF && len >= 4) {
        uint32_t oif;
        memcpy(&oif, data, 4);
        hop->ifindex = static_cast<int>(oif);
      } else if (type == RTA_GATEWAY && len >= (rtm->rtm_family == AF_INET6 ? 16u : 4u)) {
        hop->gateway = FormatAddress(rtm->rtm_family, data);
      } else if (type == RTA_VIA && len >= sizeof(struct rtvia)) {
        // An IPv4 route through an IPv6 next hop (RFC 5549).
        const auto *via = reinterpret_cast<const struct rtvia *>(data);
        size_t need = via->rtvia_family == AF_INET6 ? 16 : 4;
        if (len >= sizeof(struct rtvia) + need) hop->gateway = FormatAddress(via->rtvia_family, via->rtvia_addr);
      }
    });
  }

  std::string InNetns() const { return netns.empty() ? "" : " in netns " + netns; }

  // Columns, turned into objects by the TS side: building 50,000 objects
  // through N-API costs ~4 µs each on the JS thread, plain JS a tenth.
  // { types: Uint8Array (RouteType), ifindexes: Uint32Array (0: none),
  //   gateways: Int32Array (index into gatewayNames, -1: none), gatewayNames,
  //   devs: [[ifindex, name]], errors: [[index, message]] }
  Napi::Value ToJs(Napi::Env env) const {
    size_t n = hops.size();
    Napi::Uint8Array types = Napi::Uint8Array::New(env, n);
    Napi::Uint32Array ifindexes = Napi::Uint32Array::New(env, n);
    Napi::Int32Array gateways = Napi::Int32Array::New(env, n);
    Napi::Array gatewayNames = Napi::Array::New(env);
    Napi::Array errors = Napi::Array::New(env);
    std::map<std::string, int32_t> gatewayIndex;
    for (size_t i = 0; i < n; i++) {
      const NextHop &hop = hops[i];
      types[i] = static_cast<uint8_t>(hop.type);
      ifindexes[i] = static_cast<uint32_t>(hop.ifindex);
      gateways[i] = -1;
      if (!hop.gateway.empty()) {
        auto [it, added] = gatewayIndex.emplace(hop.gateway, static_cast<int32_t>(gatewayIndex.size()));
        if (added) gatewayNames.Set(static_cast<uint32_t>(it->second), hop.gateway);
        gateways[i] = it->second;
      }
      if (!hop.error.empty()) errors.Set(errors.Length(), Pair(env, static_cast<double>(i), hop.error));
    }
    Napi::Array devNames = Napi::Array::New(env);
    for (const auto &[ifindex, name] : devs) {
      if (!name.empty()) devNames.Set(devNames.Length(), Pair(env, ifindex, name));
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("types", types);
    out.Set("ifindexes", ifindexes);
    out.Set("gateways", gateways);
    out.Set("gatewayNames", gatewayNames);
    out.Set("devs", devNames);
    out.Set("errors", errors);
    return out;
  }
};

// ---- neighboursSet ---------------------------------------------------------

struct NeighbourEntry {
  IpAddress address;
  int ifindex = 0;
  bool managed = false;
};

struct NeighbourJob {
  static constexpr const char *kName = "neighboursSet";
  std::vector<NeighbourEntry> entries;
  std::string netns;
  std::vector<std::string> errors;  // per entry, empty when it worked

  static struct ndmsg Header(const NeighbourEntry &e, uint16_t state) {
    struct ndmsg ndm;
    memset(&ndm, 0, sizeof(ndm));
    ndm.ndm_family = static_cast<uint8_t>(e.address.family);
    ndm.ndm_ifindex = e.ifindex;
    ndm.ndm_state = state;
    return ndm;
  }

  static NetlinkMessage ManageRequest(const NeighbourEntry &e) {
    struct ndmsg ndm = Header(e, NUD_NONE);
    uint32_t extFlags = NTF_EXT_MANAGED;
    return NetlinkRequest(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, &ndm, sizeof(ndm))
        .Attr(NDA_DST, e.address.bytes, e.address.len)
        .Attr(NDA_FLAGS_EXT, &extFlags, sizeof(extFlags))
        .Finish();
  }

  // Replacing without NDA_FLAGS_EXT clears NTF_EXT_MANAGED; STALE keeps the
  // MAC for whoever still uses it until the kernel ages the entry out.
  static NetlinkMessage ReleaseRequest(const NeighbourEntry &e) {
    struct ndmsg ndm = Header(e, NUD_STALE);
    return NetlinkRequest(RTM_NEWNEIGH, NLM_F_REQUEST | NLM_F_ACK | NLM_F_REPLACE, &ndm, sizeof(ndm))
        .Attr(NDA_DST, e.address.bytes, e.address.len)
        .Finish();
  }

  static NetlinkMessage DeleteRequest(const NeighbourEntry &e) {
    struct ndmsg ndm = Header(e, 0);
    return NetlinkRequest(RTM_DELNEIGH, NLM_F_REQUEST | NLM_F_ACK, &ndm, sizeof(ndm))
        .Attr(NDA_DST, e.address.bytes, e.address.len)
        .Finish();
  }

  void Run(RouteNetlink &netlink, CallFailure *failure) {
    std::vector<NetlinkMessage> requests;
    requests.reserve(entries.size());
    for (const NeighbourEntry &e : entries) requests.push_back(e.managed ? ManageRequest(e) : ReleaseRequest(e));
    std::vector<NetlinkAnswer> answers;
    std::string error;
    int err = netlink.Exchange(requests, &answers, &error);
    if (err != 0) return Fail(failure, err, error);
    InterfaceNames names;
    errors.assign(entries.size(), "");
    // A released entry that never resolved (INCOMPLETE/FAILED) has no MAC to
    // keep as STALE (EINVAL "No link layer address given"): delete it.
    std::vector<size_t> unresolved;
    for (size_t i = 0; i < entries.size(); i++) {
      const NetlinkAnswer &answer = answers[i];
      if (answer.err == 0) continue;
      if (!entries[i].managed && answer.err == ENOENT) continue;  // gone already: nothing to release
      if (!entries[i].managed && answer.err == EINVAL) {
        unresolved.push_back(i);
        continue;
      }
      errors[i] = AnswerError(answer, (entries[i].managed ? "managed " : "releasing ") + Describe(entries[i], names));
    }
    if (unresolved.empty()) return;
    requests.clear();
    for (size_t i : unresolved) requests.push_back(DeleteRequest(entries[i]));
    err = netlink.Exchange(requests, &answers, &error);
    if (err != 0) return Fail(failure, err, error);
    for (size_t k = 0; k < unresolved.size(); k++) {
      const NetlinkAnswer &answer = answers[k];
      if (answer.err == 0 || answer.err == ENOENT) continue;
      size_t i = unresolved[k];
      errors[i] = AnswerError(answer, "deleting unresolved " + Describe(entries[i], names));
    }
  }

  void Fail(CallFailure *failure, int err, const std::string &step) const {
    failure->err = err;
    failure->message = ComposeMessage(err, "neighboursSet" + InNetns() + ": " + step, UINT64_MAX);
  }

  // "neighbour ADDR on ifindex 7 (eth0) in netns X"
  std::string Describe(const NeighbourEntry &e, InterfaceNames &names) const {
    std::string dev = names.Name(e.ifindex);
    return "neighbour " + e.address.text + " on ifindex " +
           std::to_string(e.ifindex) + (dev.empty() ? "" : " (" + dev + ")") + InNetns();
  }

  std::string InNetns() const { return netns.empty() ? "" : " in netns " + netns; }

  // [[index, message]] for the entries that failed; the TS side builds
  // the results from its own arguments.
  Napi::Value ToJs(Napi::Env env) const {
    Napi::Array out = Napi::Array::New(env);
    for (size_t i = 0; i < errors.size(); i++) {
      if (!errors[i].empty()) out.Set(out.Length(), Pair(env, static_cast<double>(i), errors[i]));
    }
    return out;
  }
};

// ---- the worker ------------------------------------------------------------

// Runs a job on a libuv worker thread: enters the job's netns on that
// thread, opens one rtnetlink socket there, and settles the promise on the
// JS thread. Per-entry failures are in the results; the promise rejects
// (BpfError) only when the namespace or the socket fails.
template <typename Job>
class NetlinkWorker : public Napi::AsyncWorker {
 public:
  NetlinkWorker(Napi::Env env, Job job)
      : Napi::AsyncWorker(env, Job::kName), job_(std::move(job)), deferred_(env) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    NetnsGuard guard;
    std::string error;
    int err = guard.Enter(job_.netns, &error);
    if (err != 0) {
      failure_ = {err, ComposeMessage(err, std::string(Job::kName) + ": " + error, UINT64_MAX)};
      return;
    }
    RouteNetlink netlink;  // closed before the guard leaves the namespace
    err = netlink.Open(&error);
    if (err != 0) {
      failure_ = {err, ComposeMessage(err, std::string(Job::kName) + job_.InNetns() + ": " + error, UINT64_MAX)};
      return;
    }
    job_.Run(netlink, &failure_);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (failure_.err != 0) {
      deferred_.Reject(MakeErrorRaw(env, failure_.err, failure_.message).Value());
    } else {
      deferred_.Resolve(job_.ToJs(env));
    }
  }

 private:
  Job job_;
  CallFailure failure_;
  Napi::Promise::Deferred deferred_;
};

template <typename Job>
Napi::Value Start(Napi::Env env, Job job) {
  auto *worker = new NetlinkWorker<Job>(env, std::move(job));
  Napi::Promise promise = worker->Promise();
  worker->Queue();  // deletes itself when done
  return promise;
}

}  // namespace

// routeNextHops(joinedAddresses, count, netns?) -> Promise<columns (RouteJob::ToJs)>
Napi::Value RouteNextHops(const Napi::CallbackInfo &info) {
  RouteJob job;
  job.addresses = ArgAddresses(ArgAt(info, 0), ArgAt(info, 1), "routeNextHops: addresses", "");
  job.netns = OptString(ArgAt(info, 2), "routeNextHops: netns").value_or("");
  return Start(info.Env(), std::move(job));
}

// neighboursSet(joinedAddresses, count, ifindexes: Int32Array, managed: Uint8Array, netns?)
//   -> Promise<[[index, message]]>
Napi::Value NeighboursSet(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::vector<IpAddress> addresses = ArgAddresses(ArgAt(info, 0), ArgAt(info, 1), "neighboursSet: entries", ".address");
  Napi::Value ifindexValue = ArgAt(info, 2);
  Napi::Value managedValue = ArgAt(info, 3);
  if (!ifindexValue.IsTypedArray() || ifindexValue.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
      ifindexValue.As<Napi::Int32Array>().ElementLength() != addresses.size()) {
    ThrowInvalid(env, "neighboursSet: ifindexes must be an Int32Array with one element per entry");
  }
  if (!managedValue.IsTypedArray() || managedValue.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      managedValue.As<Napi::Uint8Array>().ElementLength() != addresses.size()) {
    ThrowInvalid(env, "neighboursSet: managed must be a Uint8Array with one element per entry");
  }
  Napi::Int32Array ifindexes = ifindexValue.As<Napi::Int32Array>();
  Napi::Uint8Array managed = managedValue.As<Napi::Uint8Array>();
  NeighbourJob job;
  job.netns = OptString(ArgAt(info, 4), "neighboursSet: netns").value_or("");
  job.entries.resize(addresses.size());
  for (size_t i = 0; i < addresses.size(); i++) {
    if (ifindexes[i] < 1) {
      ThrowInvalid(env, "neighboursSet: entries[" + std::to_string(i) + "].ifindex must be an integer in [1, " +
                            std::to_string(INT32_MAX) + "], got " + std::to_string(ifindexes[i]));
    }
    job.entries[i] = {std::move(addresses[i]), ifindexes[i], managed[i] != 0};
  }
  return Start(env, std::move(job));
}

}  // namespace pharos
