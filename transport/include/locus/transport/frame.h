// Cap'n Proto messages as ZeroMQ frames: one message per frame, the frame
// owning the serialized words (read back in place with FlatMessage).
#pragma once

#include <capnp/message.h>

#include <zmq.hpp>

namespace locus::transport {

// The message as one ZeroMQ frame; the frame owns the serialized words.
zmq::message_t toFrame(capnp::MessageBuilder& message);

}  // namespace locus::transport
