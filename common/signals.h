#ifndef GRAIL_COMMON_SIGNALS_H_
#define GRAIL_COMMON_SIGNALS_H_

namespace grail {

// Blocks SIGTERM and SIGINT in the calling thread and every thread it creates afterwards.
// REQUIRES: called at the start of main(), before any thread exists.
void BlockTerminationSignals();

// Waits until SIGTERM or SIGINT arrives and returns its number.
// REQUIRES: BlockTerminationSignals() was called.
int WaitForTerminationSignal();

}  // namespace grail

#endif  // GRAIL_COMMON_SIGNALS_H_
