// zmq::poll that a signal does not end.
//
// cppzmq throws zmq::error_t when poll fails with EINTR: a signal with a
// handler landed on the polling thread. In a process that handles signals
// for its own reasons — `locus local` with a unit as a thread, a fuzzer's
// SIGALRM, a profiler's SIGPROF — that is not an error of the poll, and a
// thread that let it escape ended the process (fuzz found it twice).
#pragma once

#include <chrono>
#include <cstddef>
#include <zmq.hpp>

namespace locus::transport {

// Polls `items` until one is ready or `timeout` has passed in all (a
// negative timeout waits for ever), polling again with what is left after
// each interruption by a signal. Returns how many items are ready, 0 when
// the time ran out. Other failures throw zmq::error_t, as zmq::poll does.
int pollThroughSignals(zmq::pollitem_t* items, size_t count, std::chrono::milliseconds timeout);

}  // namespace locus::transport
