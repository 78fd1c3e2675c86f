"""python -m jitgrad: the main job."""
from .tour import main

main()
