#pragma once
#include <cstdint>

namespace flashfas {

// docs/ARCHITECTURE.md §1 step 4: pick, for each flash state, the frame whose whole exposure saw only it.
// frame_times_us[t]: start of exposure of the first sensor row (host monotonic µs), non-decreasing.
// Rolling shutter: the last row starts readout_us later, so a frame integrates light over
// [t, t + readout_us + exposure_us].
// State s is on camera during [onset_s + latency_us, end_s + latency_us) with end_s = onset_{s+1}
// (last state: onset + state_duration_us); onsets strictly increasing.
// A frame is clean for s when its whole integration interval lies in that window; among clean
// frames the one with the largest margin to both window edges wins (earliest on ties).
// chosen[s] = frame index or -1 when no frame is clean (reported, never guessed).
void assign_frames(const std::int64_t* frame_times_us, int frame_count, std::int64_t exposure_us,
                   std::int64_t readout_us, const std::int64_t* flash_onsets_us, int state_count,
                   std::int64_t latency_us, std::int64_t state_duration_us, std::int64_t* chosen);

}  // namespace flashfas
