// Interfaces, XDP and tc attachment (all netlink under the hood, so they
// act in whichever network namespace the calling thread is in).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>

#include <cerrno>

#include "args.h"
#include "bindings.h"
#include "errors.h"

namespace pharos {

void EnterNetns(Napi::Env env, NetnsGuard &guard, const std::optional<std::string> &netns) {
  if (!netns) return;
  std::string error;
  int err = guard.Enter(*netns, &error);
  if (err != 0) Throw(env, err, error);
}

std::string DescribeIfindex(int ifindex) {
  char name[IF_NAMESIZE] = {0};
  std::string out = "ifindex " + std::to_string(ifindex);
  if (if_indextoname(ifindex, name) != nullptr) out += std::string(" (") + name + ")";
  return out;
}

static std::string InNetns(const std::optional<std::string> &netns) {
  return netns ? " in netns " + *netns : "";
}

Napi::Value IfIndex(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(ArgAt(info, 0), "ifIndex: name");
  std::optional<std::string> netns = OptString(ArgAt(info, 1), "ifIndex: netns");
  NetnsGuard guard;
  EnterNetns(env, guard, netns);
  unsigned index = if_nametoindex(name.c_str());
  if (index == 0) Throw(env, errno == 0 ? ENODEV : errno, "interface '" + name + "'" + InNetns(netns));
  return Napi::Number::New(env, index);
}

static int ArgIfindex(const Napi::CallbackInfo &info, size_t i, const std::string &what) {
  return static_cast<int>(ArgInt(ArgAt(info, i), what + ": ifindex", 1, INT32_MAX));
}

// xdpAttach(ifindex, progFd, mode, netns?) -> 'native' | 'generic'
Napi::Value XdpAttach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int ifindex = ArgIfindex(info, 0, "xdpAttach");
  int progFd = ArgInt(ArgAt(info, 1), "xdpAttach: progFd", 0, INT32_MAX);
  std::string mode = ArgString(ArgAt(info, 2), "xdpAttach: mode");
  std::optional<std::string> netns = OptString(ArgAt(info, 3), "xdpAttach: netns");
  if (mode != "native" && mode != "generic" && mode != "auto") {
    ThrowInvalid(env, "xdpAttach: mode must be 'native', 'generic' or 'auto', got '" + mode + "'");
  }
  NetnsGuard guard;
  EnterNetns(env, guard, netns);
  std::string what = "XDP attach to " + DescribeIfindex(ifindex) + InNetns(netns);
  uint64_t mark = LogMark();
  // No XDP_FLAGS_UPDATE_IF_NOEXIST: attaching replaces what is there.
  if (mode != "generic") {
    int rc = bpf_xdp_attach(ifindex, progFd, XDP_FLAGS_DRV_MODE, nullptr);
    if (rc == 0) return Napi::String::New(env, "native");
    // ENODEV/EBADF/EINVAL-on-prog will not get better in generic mode.
    if (mode == "native" || rc == -ENODEV || rc == -EBADF) Throw(env, -rc, what + " (native)", mark);
  }
  int rc = bpf_xdp_attach(ifindex, progFd, XDP_FLAGS_SKB_MODE, nullptr);
  if (rc != 0) Throw(env, -rc, what + " (generic)", mark);
  return Napi::String::New(env, "generic");
}

static void QueryXdp(Napi::Env env, int ifindex, const std::string &what, struct bpf_xdp_query_opts *opts) {
  // The netlink dump behind bpf_xdp_query just finds nothing for an unknown
  // index: check the interface exists so a typo is not reported as "none".
  char name[IF_NAMESIZE];
  if (if_indextoname(ifindex, name) == nullptr) Throw(env, ENODEV, what);
  memset(opts, 0, sizeof(*opts));
  opts->sz = sizeof(*opts);
  uint64_t mark = LogMark();
  int rc = bpf_xdp_query(ifindex, 0, opts);
  if (rc != 0) Throw(env, -rc, what, mark);
}

// The (ifindex, netns?) arguments of xdpDetach and xdpQuery.
struct XdpTarget {
  int ifindex;
  std::optional<std::string> netns;
};

static XdpTarget ParseXdpTarget(const Napi::CallbackInfo &info, const std::string &fn) {
  return {ArgIfindex(info, 0, fn), OptString(ArgAt(info, 1), fn + ": netns")};
}

// xdpDetach(ifindex, netns?): removes whatever native/generic program is attached.
Napi::Value XdpDetach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto [ifindex, netns] = ParseXdpTarget(info, "xdpDetach");
  NetnsGuard guard;
  EnterNetns(env, guard, netns);
  std::string what = "XDP detach from " + DescribeIfindex(ifindex) + InNetns(netns);
  struct bpf_xdp_query_opts q;
  QueryXdp(env, ifindex, what, &q);
  // Detaching needs the mode it was attached in (flags 0 means native on veth).
  uint64_t mark = LogMark();
  if (q.drv_prog_id != 0) {
    int rc = bpf_xdp_detach(ifindex, XDP_FLAGS_DRV_MODE, nullptr);
    if (rc != 0) Throw(env, -rc, what + " (native)", mark);
  }
  if (q.skb_prog_id != 0) {
    int rc = bpf_xdp_detach(ifindex, XDP_FLAGS_SKB_MODE, nullptr);
    if (rc != 0) Throw(env, -rc, what + " (generic)", mark);
  }
  return env.Undefined();
}

// xdpQuery(ifindex, netns?) -> { progId, mode }
Napi::Value XdpQuery(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  auto [ifindex, netns] = ParseXdpTarget(info, "xdpQuery");
  NetnsGuard guard;
  EnterNetns(env, guard, netns);
  struct bpf_xdp_query_opts q;
  QueryXdp(env, ifindex, "XDP query on " + DescribeIfindex(ifindex) + InNetns(netns), &q);
  Napi::Object out = Napi::Object::New(env);
  if (q.drv_prog_id != 0) {
    out.Set("progId", q.drv_prog_id);
    out.Set("mode", "native");
  } else if (q.skb_prog_id != 0) {
    out.Set("progId", q.skb_prog_id);
    out.Set("mode", "generic");
  } else {
    out.Set("progId", 0);
    out.Set("mode", "none");
  }
  return out;
}

struct TcTarget {
  int ifindex;
  enum bpf_tc_attach_point point;
  uint32_t handle;
  uint32_t priority;
  std::optional<std::string> netns;
  std::string direction;
};

// (ifindex, direction, [progFd,] opts?) common parsing.
static TcTarget ParseTc(const Napi::CallbackInfo &info, const char *fn, size_t optsIndex) {
  Napi::Env env = info.Env();
  TcTarget t;
  t.ifindex = ArgIfindex(info, 0, fn);
  std::string direction = ArgString(ArgAt(info, 1), std::string(fn) + ": direction");
  if (direction == "ingress") {
    t.point = BPF_TC_INGRESS;
  } else if (direction == "egress") {
    t.point = BPF_TC_EGRESS;
  } else {
    ThrowInvalid(env, std::string(fn) + ": direction must be 'ingress' or 'egress', got '" + direction + "'");
  }
  Napi::Value opts = ArgAt(info, optsIndex);
  t.handle = 1;
  t.priority = 1;
  if (!IsAbsent(opts)) {
    if (!opts.IsObject()) ThrowInvalid(env, std::string(fn) + ": opts must be an object");
    Napi::Object o = opts.As<Napi::Object>();
    t.handle = OptInt(o.Get("handle"), std::string(fn) + ": handle", 1, UINT32_MAX, 1);
    t.priority = OptInt(o.Get("priority"), std::string(fn) + ": priority", 1, UINT16_MAX, 1);
    t.netns = OptString(o.Get("netns"), std::string(fn) + ": netns");
  }
  t.direction = direction;
  return t;
}

// After entering the netns, so the interface name is the one in there.
static std::string DescribeTc(const TcTarget &t) {
  return t.direction + " of " + DescribeIfindex(t.ifindex) + InNetns(t.netns) + " (handle " +
         std::to_string(t.handle) + ", priority " + std::to_string(t.priority) + ")";
}

// tcAttach(ifindex, direction, progFd, opts?): clsact qdisc + direct-action filter.
Napi::Value TcAttach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int progFd = ArgInt(ArgAt(info, 2), "tcAttach: progFd", 0, INT32_MAX);
  TcTarget t = ParseTc(info, "tcAttach", 3);
  NetnsGuard guard;
  EnterNetns(env, guard, t.netns);
  uint64_t mark = LogMark();
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = t.ifindex, .attach_point = t.point);
  int rc = bpf_tc_hook_create(&hook);
  // The clsact qdisc is shared by both directions: EEXIST is the normal case.
  if (rc != 0 && rc != -EEXIST) {
    // An interface in another netns than expected shows up as ENODEV here.
    Throw(env, -rc, "tc: creating clsact on " + DescribeIfindex(t.ifindex) + InNetns(t.netns), mark);
  }
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = progFd, .flags = BPF_TC_F_REPLACE,
              .handle = t.handle, .priority = t.priority);
  rc = bpf_tc_attach(&hook, &opts);
  if (rc != 0) Throw(env, -rc, "tc attach on " + DescribeTc(t), mark);
  return env.Undefined();
}

// What a call on one tc filter left: libbpf's return code, the filter's
// options as the call filled them (prog_id for a query), and where the
// libbpf log starts, for errors.
struct TcFilterCall {
  int rc;
  struct bpf_tc_opts opts;
  uint64_t mark;
};

// Runs `call(hook, opts)` on the filter (handle, priority) of the clsact hook
// `t` names, inside its netns (left again on return).
template <typename Call>
static TcFilterCall OnTcFilter(Napi::Env env, const TcTarget &t, Call call) {
  NetnsGuard guard;
  EnterNetns(env, guard, t.netns);
  TcFilterCall r{0, {}, LogMark()};
  r.opts.sz = sizeof(r.opts);
  r.opts.handle = t.handle;
  r.opts.priority = t.priority;
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = t.ifindex, .attach_point = t.point);
  r.rc = call(&hook, &r.opts);
  return r;
}

// tcDetach(ifindex, direction, opts?): idempotent (an absent filter is fine).
Napi::Value TcDetach(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  TcTarget t = ParseTc(info, "tcDetach", 2);
  TcFilterCall r = OnTcFilter(env, t, bpf_tc_detach);
  if (r.rc != 0 && r.rc != -ENOENT) Throw(env, -r.rc, "tc detach from " + DescribeTc(t), r.mark);
  return env.Undefined();
}

// tcQuery(ifindex, direction, opts?): the id of the program in the filter at
// (handle, priority), 0 when there is no such filter or no clsact qdisc. What
// `tc filter show` tells, without a tc binary (the image has none).
Napi::Value TcQuery(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  TcTarget t = ParseTc(info, "tcQuery", 2);
  TcFilterCall r = OnTcFilter(env, t, bpf_tc_query);
  // No filter there: ENOENT; no clsact qdisc at all: the kernel answers EINVAL.
  if (r.rc == -ENOENT || r.rc == -EINVAL) return Napi::Number::New(env, 0);
  if (r.rc != 0) Throw(env, -r.rc, "tc query of " + DescribeTc(t), r.mark);
  return Napi::Number::New(env, r.opts.prog_id);
}

}  // namespace pharos
