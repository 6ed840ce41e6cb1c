"""EA-LS: evolution over binary level masks."""
import random

from ..registry import LOOPS
from .mask_search_loop import MaskSearchLoop


@LOOPS.register_module()
class EvolutionSearchLoop(MaskSearchLoop):
    """Evolution of level masks, fitness = metric - cost_weight x cost.

    A random initial population; then, each generation, the ``num_parents``
    fittest of the population breed ``num_offspring`` children (uniform
    crossover of two parents with probability ``crossover_prob``, else a
    copy of one, then every flag flipped with probability
    ``mutation_prob``; masks this search already visited are drawn again),
    and the fittest ``population_size`` of parents and children survive.
    Candidates are evaluated by :meth:`MaskSearchLoop.evaluate`. The random
    choices depend only on ``seed`` and the fitness values, so a resumed
    search replays the same generations from its cache.

    Args:
        population_size (int): survivors per generation.
        num_generations (int): generations after the initial population.
        num_parents (int): how many of the fittest breed.
        num_offspring (int, optional): children per generation; default
            ``population_size``.
        mutation_prob (float): probability of flipping each flag.
        crossover_prob (float): probability of a crossover child.
        seed (int): seed of the search's random choices.
        *args, **kwargs: see :class:`MaskSearchLoop`.
    """

    name = 'EA-LS'

    def __init__(self, *args, population_size=4, num_generations=2,
                 num_parents=2, num_offspring=None, mutation_prob=0.25,
                 crossover_prob=0.5, seed=0, **kwargs):
        super().__init__(*args, **kwargs)
        self.population_size = population_size
        self.num_generations = num_generations
        self.num_parents = num_parents
        self.num_offspring = num_offspring or population_size
        self.mutation_prob = mutation_prob
        self.crossover_prob = crossover_prob
        self.seed = seed

    def max_candidates(self):
        return min(2**len(self.distiller.levels), self.population_size +
                   self.num_generations * self.num_offspring)

    def search(self):
        rng = random.Random(self.seed)
        levels = len(self.distiller.levels)
        codes = rng.sample(range(2**levels), min(self.population_size,
                                                 2**levels))
        initial = [[bool(code >> i & 1) for i in range(levels)]
                   for code in codes]
        population = [self.evaluate(flags) for flags in initial]
        visited = {tuple(r['flags']) for r in population}
        for generation in range(self.num_generations):
            parents = sorted(population, key=lambda r: -r['fitness'])
            children = self._breed(rng, parents[:self.num_parents], visited)
            if not children:
                break  # the search space is exhausted
            population = sorted(
                population + [self.evaluate(c) for c in children],
                key=lambda r: -r['fitness'])[:self.population_size]
            best = population[0]
            self.runner.logger.info(
                f'EA-LS generation {generation + 1}: best {best["mask"]} '
                f'(fitness {best["fitness"]:.4f})')

    def _breed(self, rng, parents, visited):
        children = []
        for _ in range(20 * self.num_offspring):
            if len(children) == self.num_offspring:
                break
            if len(parents) > 1 and rng.random() < self.crossover_prob:
                a, b = rng.sample(parents, 2)
                child = [rng.choice(pair)
                         for pair in zip(a['flags'], b['flags'])]
            else:
                child = list(rng.choice(parents)['flags'])
            child = tuple(int(bool(f) != (rng.random() < self.mutation_prob))
                          for f in child)
            if child not in visited:
                visited.add(child)
                children.append([bool(f) for f in child])
        return children
