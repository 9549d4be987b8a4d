"""The pinned values of the shapes world: other tools (the judge, captions) read videos by them."""

PALETTE = {  # RGB, uint8
    "red": (230, 30, 30),
    "green": (30, 200, 30),
    "blue": (40, 80, 255),
    "yellow": (240, 220, 20),
    "magenta": (220, 40, 220),
    "cyan": (30, 210, 210),
    "white": (245, 245, 245),
    "orange": (250, 140, 20),
}
BACKGROUND = (0, 0, 0)
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 0.25, "large": 0.40}  # extent as a fraction of min(H, W)
SIZE_JITTER = 0.10
DIRECTIONS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}  # (dy, dx)
SPEEDS = {"slow": 1 / 32, "fast": 1 / 16}  # pixels a frame as a fraction of min(H, W)
FPS = 8

# Colour-shape pairs that never appear in training captions or videos (the held-out split).
HELD_OUT_PAIRS = frozenset({
    ("red", "triangle"), ("green", "circle"), ("blue", "square"),
    ("yellow", "triangle"), ("white", "circle"), ("orange", "square"),
})
