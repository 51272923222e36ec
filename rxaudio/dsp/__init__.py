"""Pure numpy kernels, no Rx: framing, resampling, levels (and, later, STFT/mel/MFCC)."""
