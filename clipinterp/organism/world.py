"""The shapes world: a tiny, fully specified image/caption distribution.

Every image is ``S x S = 64 x 64`` RGB (uint8) and holds ``count`` identical copies of one
object drawn over a textured background. All rules of the world:

Attributes (names used in code, JSON and the model card):

* ``shape`` in {circle, square, triangle, star, cross}: the object's outline, drawn as a crisp
  binary mask (no anti-aliasing).
* ``color`` in {red, green, blue, yellow, purple, orange}: the object's fill, one exact saturated
  RGB value each (:data:`COLORS`). Background pixels are always gray (r = g = b), so object
  pixels are exactly the pixels with ``max(rgb) - min(rgb) > 60``.
* ``size`` in {small, large}: the mask's bounding box is 9 px (small) or 15 px (large) square.
* ``count`` in {one, two, three}: number of identical, non-touching copies.
* ``position`` in {left, right, top, bottom}: the copies sit in a row along the long axis of
  that region; left/right regions are the left/right halves' centre columns (x = 16 or 48),
  the copies stacked vertically; top/bottom are the rows y = 16 or 48, copies side by side.
  The whole group is jittered by at most 3 px in each direction.
* ``background_color`` in {white, black, gray}: the base tone of the background.
* ``background_texture`` in {plain, stripes, dots, checker}: plain = base tone only; stripes =
  vertical 3 px bands of a second tone every 6 px; dots = 2x2 px dots of the second tone on a
  6 px grid; checker = 4 px checkerboard of base and second tone. The second tone of each base
  is fixed (:data:`BACKGROUND_TONES`). Patterns start at pixel (0, 0) (no phase jitter).

Sampling (all attributes independent and uniform unless stated):

* Splits ``train``, ``val`` and ``test`` share one distribution, with the planted spurious
  correlation: a ``star`` is drawn on ``stripes`` with probability 0.9 (otherwise one of the
  other three textures, uniformly), every other shape on ``stripes`` with probability 0.025
  (otherwise uniformly one of the other three). So about 90% of stars are on stripes and about
  90% of striped images show a star.
* Split ``shifted`` breaks it the other way round: a star is never on stripes (uniform over the
  other three textures) and every other shape is on stripes with probability 0.5.
* Splits use disjoint random streams: image ``i`` of a split is drawn from
  ``numpy.random.default_rng([seed, split_id, i])``, split ids train=0, val=1, test=2,
  shifted=3, so a sample depends only on (seed, split, index).
* ``faded(images, amount)`` is a shift of the pixels, not a split: each pixel moves ``amount`` of
  the way to its own grey level, so the gray background is unchanged and the objects lose
  saturation: colour gets hard to read, and so do shape and size for a model that finds the
  objects by their saturation, as the shipped one does.

Captions (:func:`caption`): a random subset of the attributes is named, each independently with
probability :data:`MENTION_PROB` (shape/color 0.5, size/position/count 0.4, background colour
0.3, background texture only 0.1, so the texture cue is rarely named; at least one attribute is
always named). :meth:`Batch.matches` says which captions are true of which images (a caption is
true of every image that has the attributes it names). With ``generate(..., group_size=g)``
consecutive samples come in contrast groups of ``g`` that differ in one named attribute. The word order is fixed::

    [count] [size] [color] NOUN [position phrase] [on a [texture] [bg colour] background]

NOUN is the shape word (plural after two/three) or ``shape``/``shapes`` when the shape is not
named. Position phrases are "on the left", "on the right", "at the top", "at the bottom";
textures read "plain", "striped", "dotted", "checkered". Captions are lower case, words
separated by single spaces, with no punctuation, and use only :func:`vocabulary` words.
Zero-shot prompts (:func:`class_prompts`) are captions naming exactly one attribute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

IMAGE_SIZE = 64
PATCH_SIZE = 8

SHAPES = ("circle", "square", "triangle", "star", "cross")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 70, 230),
    "yellow": (240, 220, 20),
    "purple": (150, 40, 200),
    "orange": (250, 140, 0),
}
SIZES: dict[str, int] = {"small": 9, "large": 15}
POSITIONS = ("left", "right", "top", "bottom")
COUNTS: dict[str, int] = {"one": 1, "two": 2, "three": 3}
BACKGROUND_TEXTURES = ("plain", "stripes", "dots", "checker")
BACKGROUND_TONES: dict[str, tuple[int, int]] = {
    "white": (245, 200),
    "black": (15, 70),
    "gray": (128, 165),
}
ATTRIBUTES: tuple[str, ...] = (
    "shape",
    "color",
    "size",
    "position",
    "background_texture",
    "background_color",
    "count",
)
VALUES: dict[str, tuple[str, ...]] = {
    "shape": SHAPES,
    "color": tuple(COLORS),
    "size": tuple(SIZES),
    "position": POSITIONS,
    "background_texture": BACKGROUND_TEXTURES,
    "background_color": tuple(BACKGROUND_TONES),
    "count": tuple(COUNTS),
}
SPLITS: dict[str, int] = {"train": 0, "val": 1, "test": 2, "shifted": 3}
# attributes a contrast group may vary (the texture stays rarely named and never contrasted)
VARIED_ATTRIBUTES = ("shape", "color", "size", "position", "count", "background_color")
SPURIOUS_SHAPE = "star"
SPURIOUS_TEXTURE = "stripes"
MENTION_PROB: dict[str, float] = {
    "shape": 0.5,
    "color": 0.5,
    "size": 0.4,
    "position": 0.4,
    "count": 0.4,
    "background_color": 0.3,
    "background_texture": 0.1,
}
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles",
           "star": "stars", "cross": "crosses", "shape": "shapes"}
POSITION_PHRASES = {"left": "on the left", "right": "on the right",
                    "top": "at the top", "bottom": "at the bottom"}
TEXTURE_WORDS = {"plain": "plain", "stripes": "striped", "dots": "dotted", "checker": "checkered"}
_GROUP_JITTER = 3
_SATURATION_THRESHOLD = 60


@dataclass
class Batch:
    """Samples of the world.

    images: uint8 ``[n, 64, 64, 3]``; attributes: one dict per image (all of
    :data:`ATTRIBUTES`); captions: one string per image; mentions: the attributes each caption
    names.
    """

    images: np.ndarray
    attributes: list[dict[str, str]]
    captions: list[str]
    mentions: list[frozenset[str]]

    def matches(self) -> np.ndarray:
        """Bool ``[n, n]``: ``[i, j]`` when caption ``i`` is true of image ``j``."""
        n = len(self.captions)
        out = np.ones((n, n), dtype=bool)
        for attr in ATTRIBUTES:
            values = np.array([a[attr] for a in self.attributes])
            named = np.array([attr in m for m in self.mentions])
            out &= ~named[:, None] | (values[:, None] == values[None, :])
        return out


def vocabulary() -> list[str]:
    """Every word a caption or a zero-shot prompt can contain, sorted."""
    words = set(SHAPES) | set(PLURALS.values()) | {"shape"} | set(COLORS) | set(SIZES)
    words |= set(COUNTS) | set(BACKGROUND_TONES) | set(TEXTURE_WORDS.values())
    for phrase in POSITION_PHRASES.values():
        words |= set(phrase.split())
    words |= {"on", "a", "background"}
    return sorted(words)


@lru_cache(maxsize=None)
def shape_mask(shape: str, size: int) -> np.ndarray:
    """Binary mask ``[size, size]`` (bool) of ``shape`` filling a ``size``-px box."""
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    if shape == "square":
        return np.ones((size, size), dtype=bool)
    if shape == "circle":
        return (xx - c) ** 2 + (yy - c) ** 2 <= (size / 2.0) ** 2
    if shape == "triangle":
        # apex at the top row, base on the bottom row
        half_width = (yy + 1) / size * (size / 2.0)
        return np.abs(xx - c) <= half_width - 0.25
    if shape == "cross":
        arm = size // 3
        lo, hi = (size - arm) // 2, (size - arm) // 2 + arm + (size % 3 == 2)
        return ((xx >= lo) & (xx < hi)) | ((yy >= lo) & (yy < hi))
    if shape == "star":
        # five-pointed star, point up, vertically centred; a pixel is in when at least half
        # of its 4x4 sub-samples are inside the polygon
        r_out = size / 2.0
        angles = np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r_out, r_out * 0.5)
        px = c + radii * np.cos(angles)
        py = c - radii * np.sin(angles) + r_out * (1 - np.cos(np.pi / 5)) / 2
        sub = (np.arange(4) + 0.5) / 4 - 0.5
        sy, sx = np.meshgrid(sub, sub, indexing="ij")
        fine_y = (yy[:, :, None, None] + sy).reshape(size, size, 16)
        fine_x = (xx[:, :, None, None] + sx).reshape(size, size, 16)
        return _inside_polygon(fine_x, fine_y, px, py).mean(axis=2) >= 0.5
    raise ValueError(f"unknown shape {shape!r}")


def _inside_polygon(xx: np.ndarray, yy: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Even-odd rule point-in-polygon for grids ``xx, yy`` and vertices ``px, py``."""
    inside = np.zeros(xx.shape, dtype=bool)
    n = len(px)
    for i in range(n):
        x1, y1, x2, y2 = px[i], py[i], px[(i + 1) % n], py[(i + 1) % n]
        crosses = (y1 > yy) != (y2 > yy)
        x_at = x1 + (yy - y1) * (x2 - x1) / (y2 - y1 + 1e-12)
        inside ^= crosses & (xx < x_at)
    return inside


@lru_cache(maxsize=None)
def texture_mask(texture: str) -> np.ndarray:
    """Bool ``[64, 64]``: where the background's second tone goes for ``texture``."""
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE]
    if texture == "plain":
        return np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    if texture == "stripes":
        return (xx % 6) < 3
    if texture == "dots":
        return ((xx % 6) < 2) & ((yy % 6) < 2)
    if texture == "checker":
        return ((xx // 4) + (yy // 4)) % 2 == 1
    raise ValueError(f"unknown texture {texture!r}")


@lru_cache(maxsize=None)
def background(texture: str, color: str) -> np.ndarray:
    """uint8 ``[64, 64, 3]`` background for a texture and base colour (read-only)."""
    base, second = BACKGROUND_TONES[color]
    img = np.where(texture_mask(texture), second, base).astype(np.uint8)
    out = np.repeat(img[:, :, None], 3, axis=2)
    out.setflags(write=False)
    return out


def object_centres(position: str, count: int, size: int, jitter: tuple[int, int]) -> list[tuple[int, int]]:
    """Top-left corners ``(y, x)`` of the ``count`` copies' boxes for a position and jitter."""
    spacing = size + 3
    offsets = [(k - (count - 1) / 2.0) * spacing for k in range(count)]
    short = {"left": 16, "right": 48, "top": 16, "bottom": 48}[position]
    corners = []
    for off in offsets:
        along = 32 + off
        cy, cx = (along, short) if position in ("left", "right") else (short, along)
        y0 = int(round(cy - size / 2.0)) + jitter[0]
        x0 = int(round(cx - size / 2.0)) + jitter[1]
        corners.append((y0, x0))
    return corners


def sample_attributes(rng: np.random.Generator, split: str) -> dict[str, str]:
    """Draw one attribute dict under ``split``'s rules (see the module docstring)."""
    shape = SHAPES[rng.integers(len(SHAPES))]
    texture = _texture_for(rng, shape, split)
    return {
        "shape": shape,
        "color": VALUES["color"][rng.integers(len(COLORS))],
        "size": VALUES["size"][rng.integers(len(SIZES))],
        "position": POSITIONS[rng.integers(len(POSITIONS))],
        "background_texture": texture,
        "background_color": VALUES["background_color"][rng.integers(len(BACKGROUND_TONES))],
        "count": VALUES["count"][rng.integers(len(COUNTS))],
    }


def render(attrs: dict[str, str], jitter: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Draw one scene: uint8 ``[64, 64, 3]``."""
    img = background(attrs["background_texture"], attrs["background_color"]).copy()
    size = SIZES[attrs["size"]]
    mask = shape_mask(attrs["shape"], size)
    color = np.array(COLORS[attrs["color"]], dtype=np.uint8)
    for y0, x0 in object_centres(attrs["position"], COUNTS[attrs["count"]], size, jitter):
        img[y0:y0 + size, x0:x0 + size][mask] = color
    return img


def caption(attrs: dict[str, str], mention: set[str] | frozenset[str]) -> str:
    """Caption naming exactly the attributes in ``mention`` (fixed word order, no punctuation)."""
    words: list[str] = []
    plural = "count" in mention and attrs["count"] != "one"
    if "count" in mention:
        words.append(attrs["count"])
    if "size" in mention:
        words.append(attrs["size"])
    if "color" in mention:
        words.append(attrs["color"])
    noun = attrs["shape"] if "shape" in mention else "shape"
    words.append(PLURALS[noun] if plural else noun)
    if "position" in mention:
        words.append(POSITION_PHRASES[attrs["position"]])
    if "background_texture" in mention or "background_color" in mention:
        words.append("on a")
        if "background_texture" in mention:
            words.append(TEXTURE_WORDS[attrs["background_texture"]])
        if "background_color" in mention:
            words.append(attrs["background_color"])
        words.append("background")
    return " ".join(words)


def sample_mention(rng: np.random.Generator) -> frozenset[str]:
    """Random subset of attributes to name (each with :data:`MENTION_PROB`, never empty)."""
    while True:
        chosen = frozenset(a for a in ATTRIBUTES if rng.random() < MENTION_PROB[a])
        if chosen:
            return chosen


def _texture_for(rng: np.random.Generator, shape: str, split: str) -> str:
    """Background texture given the shape, under ``split``'s spurious rule."""
    others = [t for t in BACKGROUND_TEXTURES if t != SPURIOUS_TEXTURE]
    if split == "shifted":
        p_stripes = 0.0 if shape == SPURIOUS_SHAPE else 0.5
    else:
        p_stripes = 0.9 if shape == SPURIOUS_SHAPE else 0.025
    if rng.random() < p_stripes:
        return SPURIOUS_TEXTURE
    return others[rng.integers(len(others))]


def _jitter(rng: np.random.Generator) -> tuple[int, int]:
    return (int(rng.integers(-_GROUP_JITTER, _GROUP_JITTER + 1)),
            int(rng.integers(-_GROUP_JITTER, _GROUP_JITTER + 1)))


def _group_member(seed: int, split: str, index: int, group_size: int) -> tuple[dict[str, str], tuple[int, int], frozenset[str]]:
    """Attributes, jitter and mention set of sample ``index`` when samples come in contrast groups.

    Group ``g = index // group_size`` draws one base scene, one varied attribute (any but
    ``background_texture``) and one mention set (which always names the varied attribute);
    member ``j`` takes the ``j``-th of a random ordering of that attribute's values (cycling when
    there are fewer values than members), its own jitter and, when the shape varies, its own
    texture drawn under the split's rule, so every member keeps the split's joint distribution.
    """
    group, member = divmod(index, group_size)
    g_rng = np.random.default_rng([seed, SPLITS[split], group, 1])
    base = sample_attributes(g_rng, split)
    varied = VARIED_ATTRIBUTES[g_rng.integers(len(VARIED_ATTRIBUTES))]
    order = g_rng.permutation(len(VALUES[varied]))
    mention = sample_mention(g_rng) | {varied}
    m_rng = np.random.default_rng([seed, SPLITS[split], group, 2, member])
    attrs = dict(base)
    attrs[varied] = VALUES[varied][order[member % len(order)]]
    if varied == "shape":
        attrs["background_texture"] = _texture_for(m_rng, attrs["shape"], split)
    return attrs, _jitter(m_rng), frozenset(mention)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")


def _sample(split: str, seed: int, index: int, group_size: int) -> tuple[dict[str, str], tuple[int, int], frozenset[str]]:
    """Attributes, jitter and mention set of sample ``index`` of ``split`` for ``seed``."""
    if group_size > 1:
        return _group_member(seed, split, index, group_size)
    rng = np.random.default_rng([seed, SPLITS[split], index])
    attrs = sample_attributes(rng, split)
    jitter = _jitter(rng)
    return attrs, jitter, sample_mention(rng)


def scene_count() -> int:
    """How many distinct scenes the world has: every combination of attribute values and jitter."""
    return math.prod(len(VALUES[a]) for a in ATTRIBUTES) * (2 * _GROUP_JITTER + 1) ** 2


def scenes(split: str, n: int, seed: int = 0, start: int = 0, group_size: int = 1) -> list[tuple]:
    """The scene of each of :func:`generate`'s samples (same arguments), without rendering.

    A scene is what :func:`render` draws from: the seven attribute values (in :data:`ATTRIBUTES`
    order) and the jitter, so two samples with the same scene have the same pixels. Replaying
    a training run's stream this way finds the test images it trained on.
    """
    _check_split(split)
    keys = []
    for i in range(n):
        attrs, jitter, _ = _sample(split, seed, start + i, group_size)
        keys.append(tuple(attrs[a] for a in ATTRIBUTES) + jitter)
    return keys


def generate(split: str, n: int, seed: int = 0, start: int = 0, group_size: int = 1,
             name_only: frozenset[str] | None = None) -> Batch:
    """Samples ``start .. start + n - 1`` of ``split`` for ``seed``: a :class:`Batch` of n images.

    ``group_size > 1`` draws contrast groups (see :func:`_group_member`): consecutive samples that
    differ in one named attribute, the hard negatives the trainer uses. ``name_only``: every
    caption names exactly these attributes (the images are the same as without it).
    """
    _check_split(split)
    images = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    attributes: list[dict[str, str]] = []
    captions: list[str] = []
    mentions: list[frozenset[str]] = []
    for i in range(n):
        attrs, jitter, mention = _sample(split, seed, start + i, group_size)
        if name_only is not None:
            mention = frozenset(name_only)
        images[i] = render(attrs, jitter)
        attributes.append(attrs)
        captions.append(caption(attrs, mention))
        mentions.append(frozenset(mention))
    return Batch(images=images, attributes=attributes, captions=captions, mentions=mentions)


def faded(images: np.ndarray, amount: float) -> np.ndarray:
    """Images ``[..., 3]`` (uint8) with every pixel blended ``amount`` (0 to 1) of the way to its
    grey level ``mean(r, g, b)``: 0 leaves them as they are, 1 makes them grey."""
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount must be between 0 and 1, got {amount}")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim < 1 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB images [..., 3], got {images.dtype} {images.shape}")
    pixels = images.astype(np.float64)
    grey = pixels.mean(axis=-1, keepdims=True)
    return np.rint(pixels + amount * (grey - pixels)).astype(np.uint8)


def class_prompts(attribute: str) -> tuple[list[str], list[str]]:
    """Zero-shot classes for ``attribute``: (values, prompts), one prompt naming each value."""
    if attribute not in VALUES:
        raise ValueError(f"unknown attribute {attribute!r}; expected one of {ATTRIBUTES}")
    values = list(VALUES[attribute])
    prompts = []
    for value in values:
        attrs = {a: VALUES[a][0] for a in ATTRIBUTES}
        attrs[attribute] = value
        prompts.append(caption(attrs, frozenset({attribute})))
    return values, prompts


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """8-connected components of a bool ``[H, W]`` mask, each a bool mask of the same shape."""
    remaining = mask.copy()
    comps = []
    while remaining.any():
        ys, xs = np.nonzero(remaining)
        comp = np.zeros_like(mask)
        comp[ys[0], xs[0]] = True
        while True:
            grown = comp.copy()
            grown[1:] |= grown[:-1].copy()
            grown[:-1] |= grown[1:].copy()
            grown[:, 1:] |= grown[:, :-1].copy()
            grown[:, :-1] |= grown[:, 1:].copy()
            grown &= remaining
            if (grown == comp).all():
                break
            comp = grown
        comps.append(comp)
        remaining &= ~comp
    return comps


def derive_attributes(image: np.ndarray) -> dict[str, str]:
    """Re-derive all attributes of one uint8 ``[64, 64, 3]`` image from its pixels.

    Uses only the world's known colours and geometry: object pixels are the saturated ones,
    copies are connected components, shape and size come from matching each component's box
    against the exact masks, position from the group's centroid, background colour and texture
    from the gray tones and their layout.
    """
    img = image.astype(np.int16)
    obj = (img.max(axis=2) - img.min(axis=2)) > _SATURATION_THRESHOLD
    comps = _components(obj)
    mean_rgb = img[obj].mean(axis=0)
    color = min(COLORS, key=lambda c: float(((np.array(COLORS[c]) - mean_rgb) ** 2).sum()))
    ys, xs = np.nonzero(comps[0])
    box = comps[0][ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    size = min(SIZES, key=lambda s: abs(SIZES[s] - max(box.shape)))
    side = SIZES[size]
    best_shape, best_err = SHAPES[0], np.inf
    for shape in SHAPES:
        ref = shape_mask(shape, side)
        rows = np.nonzero(ref.any(axis=1))[0]
        cols = np.nonzero(ref.any(axis=0))[0]
        ref_box = ref[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        err = np.inf if ref_box.shape != box.shape else float((ref_box != box).sum())
        if err < best_err:
            best_shape, best_err = shape, err
    oy, ox = np.nonzero(obj)
    dy, dx = oy.mean() - (IMAGE_SIZE - 1) / 2.0, ox.mean() - (IMAGE_SIZE - 1) / 2.0
    if abs(dx) > abs(dy):
        position = "left" if dx < 0 else "right"
    else:
        position = "top" if dy < 0 else "bottom"
    gray = img[..., 0]
    bg = ~obj
    tones = {int(v) for v in np.unique(gray[bg])}
    bg_color = next(c for c, pair in BACKGROUND_TONES.items() if tones & set(pair))
    second = gray == BACKGROUND_TONES[bg_color][1]
    texture = "plain"
    for candidate in BACKGROUND_TEXTURES:
        if ((texture_mask(candidate) == second) | ~bg).all():
            texture = candidate
            break
    count = {1: "one", 2: "two", 3: "three"}[len(comps)]
    return {
        "shape": best_shape,
        "color": color,
        "size": size,
        "position": position,
        "background_texture": texture,
        "background_color": bg_color,
        "count": count,
    }
