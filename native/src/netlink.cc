#include "netlink.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>

namespace pharos {

namespace {

// Receive buffer asked for (SO_RCVBUFFORCE needs CAP_NET_ADMIN; without it
// SO_RCVBUF is capped by net.core.rmem_max). The kernel doubles the value.
constexpr int kReceiveBufferBytes = 4 * 1024 * 1024;
// Receive-buffer bytes one answer is charged (its skb's truesize): ~0.8 KiB
// measured for a route reply on 6.18 (a 64 KiB buffer held 78); count more
// so other kernels and larger replies still fit.
constexpr size_t kBytesPerAnswer = 2048;
constexpr size_t kMinWindow = 8;
constexpr size_t kMaxWindow = 512;
// netlink_sendmsg refuses more than the send buffer (default ~208 KiB).
constexpr size_t kMaxSendBytes = 64 * 1024;
// An answer is a few hundred bytes; 64 KiB holds any one datagram.
constexpr size_t kReadBytes = 64 * 1024;
// The kernel answers before sendmsg returns; this only bounds a surprise.
constexpr int kAnswerTimeoutSeconds = 5;
// A request whose answer was dropped this many times gets ENOBUFS.
constexpr int kMaxAttempts = 4;

// The kernel could not queue the answer: ask again.
bool AnswerLost(int err) { return err == ENOBUFS || err == EAGAIN; }

void ParseError(const struct nlmsghdr *h, NetlinkAnswer *answer) {
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) {
    answer->err = EPROTO;
    answer->kernelMessage = "truncated netlink error message";
    return;
  }
  const auto *e = static_cast<const struct nlmsgerr *>(NLMSG_DATA(h));
  answer->err = -e->error;  // 0: an ack
  if ((h->nlmsg_flags & NLM_F_ACK_TLVS) == 0) return;
  // Extended-ack attributes follow the error and, unless capped, a copy of
  // our request's payload.
  size_t offset = NLMSG_HDRLEN + sizeof(struct nlmsgerr);
  if ((h->nlmsg_flags & NLM_F_CAPPED) == 0) offset += e->msg.nlmsg_len - NLMSG_HDRLEN;
  offset = NLMSG_ALIGN(offset);
  if (offset >= h->nlmsg_len) return;
  const auto *base = reinterpret_cast<const uint8_t *>(h);
  ForEachAttr(base + offset, h->nlmsg_len - offset, [answer](uint16_t type, const uint8_t *data, size_t len) {
    if (type == NLMSGERR_ATTR_MSG && len > 0) {
      answer->kernelMessage.assign(reinterpret_cast<const char *>(data), strnlen(reinterpret_cast<const char *>(data), len));
    }
  });
}

}  // namespace

NetlinkRequest::NetlinkRequest(uint16_t type, uint16_t flags, const void *familyHeader,
                               size_t familyHeaderLen) {
  buf_.resize(NLMSG_LENGTH(familyHeaderLen));
  auto *h = reinterpret_cast<struct nlmsghdr *>(buf_.data());
  h->nlmsg_type = type;
  h->nlmsg_flags = flags;
  memcpy(buf_.data() + NLMSG_HDRLEN, familyHeader, familyHeaderLen);
  buf_.resize(NLMSG_ALIGN(buf_.size()));
}

NetlinkRequest &NetlinkRequest::Attr(uint16_t type, const void *data, size_t len) {
  size_t off = buf_.size();
  buf_.resize(off + NLA_ALIGN(NLA_HDRLEN + len));
  auto *attr = reinterpret_cast<struct nlattr *>(buf_.data() + off);
  attr->nla_type = type;
  attr->nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
  memcpy(buf_.data() + off + NLA_HDRLEN, data, len);
  return *this;
}

NetlinkMessage NetlinkRequest::Finish() {
  reinterpret_cast<struct nlmsghdr *>(buf_.data())->nlmsg_len = static_cast<uint32_t>(buf_.size());
  return std::move(buf_);
}

RouteNetlink::~RouteNetlink() {
  if (fd_ >= 0) close(fd_);
}

int RouteNetlink::Open(std::string *error) {
  fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd_ < 0) {
    *error = "socket(NETLINK_ROUTE)";
    return errno;
  }
  int on = 1;
  // The kernel's reason in words ("No link layer address given"), and acks
  // that do not echo the whole request back.
  setsockopt(fd_, SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof(on));
  setsockopt(fd_, SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof(on));
  int size = kReceiveBufferBytes;
  if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0) {
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  }
  int actual = 0;
  socklen_t len = sizeof(actual);
  if (getsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &actual, &len) != 0) actual = 0;
  window_ = std::clamp(static_cast<size_t>(std::max(actual, 0)) / kBytesPerAnswer, kMinWindow, kMaxWindow);
  struct timeval timeout = {kAnswerTimeoutSeconds, 0};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  struct sockaddr_nl local;
  memset(&local, 0, sizeof(local));
  local.nl_family = AF_NETLINK;
  if (bind(fd_, reinterpret_cast<struct sockaddr *>(&local), sizeof(local)) != 0) {
    *error = "bind(NETLINK_ROUTE)";
    return errno;
  }
  return 0;
}

int RouteNetlink::Exchange(const std::vector<NetlinkMessage> &requests,
                           std::vector<NetlinkAnswer> *answers, std::string *error) {
  answers->assign(requests.size(), NetlinkAnswer{});
  std::vector<int> attempts(requests.size(), 0);
  std::deque<size_t> pending;
  for (size_t i = 0; i < requests.size(); i++) pending.push_back(i);
  std::vector<uint8_t> out;
  std::vector<uint8_t> in(kReadBytes);
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof(kernel));
  kernel.nl_family = AF_NETLINK;

  while (!pending.empty()) {
    // One window: requests in one datagram, seq = firstSeq + position.
    std::vector<size_t> inFlight;
    const uint32_t firstSeq = nextSeq_;
    out.clear();
    while (!pending.empty() && inFlight.size() < window_) {
      const NetlinkMessage &msg = requests[pending.front()];
      if (!inFlight.empty() && out.size() + msg.size() > kMaxSendBytes) break;
      size_t off = out.size();
      out.insert(out.end(), msg.begin(), msg.end());
      auto *h = reinterpret_cast<struct nlmsghdr *>(out.data() + off);
      h->nlmsg_seq = nextSeq_++;
      h->nlmsg_pid = 0;
      inFlight.push_back(pending.front());
      attempts[pending.front()]++;
      pending.pop_front();
    }
    ssize_t sent;
    do {
      sent = sendto(fd_, out.data(), out.size(), 0, reinterpret_cast<struct sockaddr *>(&kernel), sizeof(kernel));
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) {
      *error = "sendmsg(NETLINK_ROUTE) of " + std::to_string(inFlight.size()) + " requests";
      return errno;
    }

    std::vector<bool> settled(inFlight.size(), false);
    size_t open = inFlight.size();
    bool overrun = false;
    bool timedOut = false;
    while (open > 0) {
      // After an overrun everything the kernel kept is already queued: read
      // it without waiting, then send the rest again.
      ssize_t n = recv(fd_, in.data(), in.size(), overrun ? MSG_DONTWAIT : 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == ENOBUFS) {
          overrun = true;
          continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          timedOut = !overrun;
          break;
        }
        *error = "recv(NETLINK_ROUTE)";
        return errno;
      }
      int left = static_cast<int>(n);
      for (auto *h = reinterpret_cast<struct nlmsghdr *>(in.data()); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
        uint32_t position = h->nlmsg_seq - firstSeq;  // wraps for answers to older windows
        if (position >= inFlight.size() || settled[position]) continue;
        if (h->nlmsg_type == NLMSG_NOOP || h->nlmsg_type == NLMSG_DONE) continue;
        size_t index = inFlight[position];
        NetlinkAnswer answer;
        if (h->nlmsg_type == NLMSG_ERROR) {
          ParseError(h, &answer);
        } else {
          const auto *bytes = reinterpret_cast<const uint8_t *>(h);
          answer.reply.assign(bytes, bytes + h->nlmsg_len);
        }
        settled[position] = true;
        open--;
        if (AnswerLost(answer.err) && attempts[index] < kMaxAttempts) {
          pending.push_back(index);
          continue;
        }
        (*answers)[index] = std::move(answer);
      }
    }
    if (open == 0) continue;
    for (size_t position = 0; position < inFlight.size(); position++) {
      if (settled[position]) continue;
      size_t index = inFlight[position];
      if (overrun && attempts[index] < kMaxAttempts) {
        pending.push_back(index);
        continue;
      }
      NetlinkAnswer &answer = (*answers)[index];
      answer.err = timedOut ? ETIMEDOUT : ENOBUFS;
      answer.kernelMessage = timedOut ? "no answer from the kernel within " + std::to_string(kAnswerTimeoutSeconds) + " s"
                                      : "the kernel's answer was dropped (netlink receive buffer full)";
    }
    if (overrun) window_ = std::max<size_t>(window_ / 2, 1);
  }
  return 0;
}

}  // namespace pharos
