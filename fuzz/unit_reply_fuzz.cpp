// What the gateway and the server read from a unit, on any bytes: the one
// reply decoder, then every kind of payload read the way its consumer
// reads it. A malformed reply is an error or a kj::Exception (which the
// consumers catch), never a crash.
#include <kj/exception.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "locus/common/wire.h"
#include "locus/transport/unit_channel.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  zmq::message_t frame(size);
  if (size > 0) std::memcpy(frame.data(), data, size);
  locus::transport::UnitCallResult call(
      kj::heap<locus::transport::UnitReplyFrame>(std::move(frame)));
  auto root = locus::transport::replyOf(call, "fuzz");
  if (!root) return 0;
  try {
    auto reply = *root;
    for (uint32_t p : reply.getNotServing()) (void)p;
    switch (reply.which()) {
      case locus::wire::UnitReply::APPLIED:
        for (auto r : reply.getApplied().getRejected()) (void)r.getReason().size();
        break;
      case locus::wire::UnitReply::ANSWERS:
        for (auto a : reply.getAnswers()) {
          if (a.isResult()) (void)locus::readQueryResult(a.getResult());
          if (a.isStats()) (void)locus::readUnitStats(a.getStats());
          if (a.isError()) (void)locus::readError(a.getError());
        }
        break;
      case locus::wire::UnitReply::PAGE:
        for (auto r : reply.getPage().getReports()) (void)locus::readReport(r);
        break;
      default:
        break;
    }
  } catch (const kj::Exception&) {
    // What the consumers catch and count as a malformed reply.
  }
  return 0;
}
