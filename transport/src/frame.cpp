#include "locus/transport/frame.h"

#include <capnp/serialize.h>
#include <kj/array.h>

namespace locus::transport {

zmq::message_t toFrame(capnp::MessageBuilder& message) {
  auto* words = new kj::Array<capnp::word>(capnp::messageToFlatArray(message));
  auto bytes = words->asBytes();
  return zmq::message_t(
      bytes.begin(), bytes.size(),
      [](void*, void* hint) { delete static_cast<kj::Array<capnp::word>*>(hint); }, words);
}

}  // namespace locus::transport
