"""supernet: speech architecture search with one weight-sharing supernet.

Pipeline (see DESIGN.md): corpus -> features -> SpeechSupernet (train once) -> search per target
-> extract -> fine-tune -> profile -> export -> report.
"""

__version__ = "0.1.0"
