"""The eMotions paper's settings of AV-CANet (§4), its inputs and its loss, in one place.

The config, the processor and the MFCC take their defaults from here, so that they cannot drift apart.
Plain constants without imports: this file travels with a saved model as remote code.
"""

NUM_SNIPPETS = 16  # s: segments of equal duration a video is cut into
FRAMES_PER_SNIPPET = 8  # T: consecutive frames taken from each segment
IMAGE_SIZE = 112  # side of the square frames
SAMPLE_RATE = 44_100  # audio is read as mono at this rate
NUM_MFCC = 32  # MFCC coefficients
MFCC_FRAMES = 4096  # q: MFCC frames per video after centre crop / tiling (q / s per snippet)
HIDDEN_SIZE = 512  # C1: width of F_v, F_a and the whole LGF module
POLARITY_GAMMA = 0.7  # EP-CE penalty γ of every polarity (Eq. 15)
