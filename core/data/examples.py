"""Short movie reviews written for this project (none from IMDB): tryable in the dashboard, parity inputs at export."""

from __future__ import annotations

# (title, text). Mixed on purpose: clear praise, clear pans, lukewarm, sarcasm, a twist at the end, markup and emoji.
EXAMPLE_REVIEWS: list[tuple[str, str]] = [
    (
        "Warm and funny",
        "I went in expecting nothing and came out grinning. The two leads have real chemistry, the jokes land, and the "
        "last twenty minutes are genuinely moving. One of the best films I have seen this year.",
    ),
    (
        "A waste of two hours",
        "The plot makes no sense, the acting is wooden and the dialogue sounds like it was written by a committee. "
        "I kept checking my watch. Avoid it.",
    ),
    (
        "Beautiful but slow",
        "Every frame could hang in a gallery and the score is lovely, but the story crawls. I admired it more than I "
        "enjoyed it.",
    ),
    (
        "Sarcasm included",
        "Oh great, another sequel nobody asked for. Brilliant idea to recycle the same villain, the same chase and the "
        "same ending. Truly groundbreaking.",
    ),
    (
        "Starts badly, ends well",
        "The first half is a mess: clumsy exposition and a dull hero. Then it finds its footing, the mystery tightens, "
        "and the finale is terrific. Stick with it.",
    ),
    (
        "Starts well, ends badly",
        "A gripping opening, sharp performances and a great premise, all thrown away by a lazy, confusing final act "
        "that left the whole audience groaning.",
    ),
    (
        "Perfect family evening",
        "My kids laughed the whole way through and I did too. Clever, kind and never boring.<br /><br />We will watch "
        "it again.",
    ),
    (
        "Horror that isn't scary",
        "Predictable jump scares, a monster you can see coming from a mile away and characters too stupid to care "
        "about. The worst horror film I've sat through in ages.",
    ),
    (
        "Quietly wonderful",
        "Nothing explodes and nobody saves the world, yet I couldn't look away. Subtle, honest, beautifully acted. "
        "\u2764\ufe0f",
    ),
    (
        "Fine, I guess",
        "It's okay. Some good scenes, some bad ones, a decent soundtrack. I won't remember much of it next week.",
    ),
    (
        "Documentary done right",
        "Informative without lecturing, and the interviews are fascinating. I learned a lot and was never bored.",
    ),
    (
        "Don't believe the hype",
        "Everyone told me this was a masterpiece. It isn't. It's loud, long and hollow, and the ending doesn't earn "
        "anything.",
    ),
]
