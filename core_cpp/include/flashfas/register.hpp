#pragma once

namespace flashfas {

// Translation of each crop against the first one, to sub-pixel precision: crops[k](x + s_k) ≈
// crops[0](x), s_0 = (0, 0). Crops are float32 [n, h, w] (grey levels, row-major); each is first
// normalised to zero mean and unit RMS, so a change of gain and offset between them (a different
// flash level) does not move the estimate (the ECC criterion, Evangelidis & Psarakis 2008, for a
// translation). Inverse-compositional Lucas–Kanade, coarse to fine over a 2x pyramid of `levels`
// levels, at most `max_iterations` Gauss–Newton steps per level. Writes n (x, y) pairs to shifts
// and n normalised cross-correlations of crops[0] with each registered crop to correlations (how
// well it locked on: a noise-dominated or different crop scores low); a crop that does not
// converge to a shift inside the crop (|s| > min(h, w) / 4) gets NaN in both.
// Throws InvalidInput when the first crop has no texture (flat: the fit is undefined).
void register_translation(const float* crops, int n, int h, int w, int levels, int max_iterations,
                          float* shifts, float* correlations);

}  // namespace flashfas
