// A small rtnetlink (NETLINK_ROUTE) client for batches: thousands of
// requests go out in a few sendmsg calls and exactly one answer comes back
// per request, in the order asked. Blocking: use it on a worker thread.
//
// The kernel handles every message of a sendmsg in the sender's context and
// queues each answer on our socket; answers that do not fit the receive
// buffer are dropped (the socket then reports ENOBUFS). So requests go out in
// windows sized to the receive buffer, and a window whose answers were
// dropped is sent again, smaller.
#pragma once

#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pharos {

// One complete netlink message, header included. Exchange fills in the
// sequence number and port id.
using NetlinkMessage = std::vector<uint8_t>;

// Builds one request: netlink header, the family's fixed header, attributes.
class NetlinkRequest {
 public:
  NetlinkRequest(uint16_t type, uint16_t flags, const void *familyHeader, size_t familyHeaderLen);
  NetlinkRequest &Attr(uint16_t type, const void *data, size_t len);
  NetlinkMessage Finish();

 private:
  NetlinkMessage buf_;
};

struct NetlinkAnswer {
  int err = 0;                 // positive errno from the kernel; 0 for a reply or an ack
  std::string kernelMessage;   // the kernel's extended-ack text, when it gave one
  std::vector<uint8_t> reply;  // a reply message (header included); empty for acks and errors
};

class RouteNetlink {
 public:
  RouteNetlink() = default;
  ~RouteNetlink();
  RouteNetlink(const RouteNetlink &) = delete;
  RouteNetlink &operator=(const RouteNetlink &) = delete;

  // Opens the socket in the calling thread's network namespace. Returns 0
  // or a positive errno; `error` then names the failed step.
  int Open(std::string *error);

  // Sends every request and collects one answer per request into `answers`
  // (same order). A request the kernel refuses is an answer with `err` set;
  // the return value (0 or a positive errno, with `error`) is for the socket
  // itself failing. Requests must not ask for dumps; a request that gets a
  // reply must not also ask for an ack (NLM_F_ACK), or the ack is ignored.
  int Exchange(const std::vector<NetlinkMessage> &requests, std::vector<NetlinkAnswer> *answers,
               std::string *error);

 private:
  int fd_ = -1;
  size_t window_ = 0;  // requests per round trip; fits the receive buffer
  uint32_t nextSeq_ = 1;
};

// Calls `visit(type, payload, payloadLen)` for each attribute in
// [data, data + len) (rtattr / nlattr share this layout).
template <typename Visit>
void ForEachAttr(const uint8_t *data, size_t len, Visit visit) {
  constexpr size_t kHeader = NLA_HDRLEN;
  size_t off = 0;
  while (off + kHeader <= len) {
    const auto *attr = reinterpret_cast<const struct nlattr *>(data + off);
    if (attr->nla_len < kHeader || off + attr->nla_len > len) return;
    visit(static_cast<uint16_t>(attr->nla_type & NLA_TYPE_MASK), data + off + kHeader,
          static_cast<size_t>(attr->nla_len - kHeader));
    off += NLA_ALIGN(attr->nla_len);
  }
}

}  // namespace pharos
