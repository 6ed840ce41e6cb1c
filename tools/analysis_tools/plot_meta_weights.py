"""The learned Meta-Weight-Net weighting functions: weight against loss per
seed, over the histograms of the per-sample training losses of correctly
and wrongly labelled samples (drawn by ``meta_weight_net.py``)."""


def plot_weighting(panels, out):
    """One panel per entry of ``panels`` (title -> the ``result.json`` of
    each seed's run: ``curve``, ``loss_clean``, ``loss_wrong``); the x axis
    is the distillation loss where the title says KD."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6),
                             squeeze=False)
    for ax, (title, runs) in zip(axes[0], panels.items()):
        hist = ax.twinx()
        for key, colour in (('loss_clean', 'tab:green'),
                            ('loss_wrong', 'tab:red')):
            if runs[0][key]:
                hist.hist(runs[0][key], bins=40, density=True, alpha=0.3,
                          color=colour, label=key.split('_')[1] + ' labels')
        hist.set_yticks([])
        for seed, run in enumerate(runs):
            ax.plot(*run['curve'], color='k', alpha=0.4 + 0.2 * seed,
                    label=f'weight(loss), run {seed}')
        ax.set_zorder(hist.get_zorder() + 1)  # curves over the histograms
        ax.patch.set_visible(False)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel('per-sample ' + ('distillation loss' if 'KD' in title
                                       else 'cross-entropy'))
        ax.set_ylabel('weight')
        ax.set_title(title, fontsize=9)
        lines, bars = (a.get_legend_handles_labels() for a in (ax, hist))
        ax.legend(lines[0] + bars[0], lines[1] + bars[1], fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
