# RL-PyramidKD on COCO (R101-FPN -> R50-FPN). The per-sample RL selector and
# its phase hook come with issue #3; until then this runs the uniform selector
# with the final data pipeline, schedule and teacher wiring.
_base_ = ['./uniform_kd_coco.py']
