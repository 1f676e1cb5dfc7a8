"""Audio in: loading and cropping, the MFCC front end, waveform and spectrogram augmentation."""
