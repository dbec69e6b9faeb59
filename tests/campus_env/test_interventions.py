"""Hard interventions cut exactly their mechanism; counterfactual twins; context splits."""

import graphlib
import itertools

import pytest

import campus_env
from campus_env import causal
from tests.campus_env.helpers import (
    assert_identical,
    assert_same_trajectory,
    descendants,
    make,
    natural_context,
    random_actions,
    run,
)

STATIC = ("day", "semester", "weather", "gameday")


def contexts(env, actions):
    """info["causal"] after every step of ``actions``."""
    out = []
    for action in actions:
        *_, info = env.step(action)
        out.append(info["causal"])
    return out


# --- the graph ----------------------------------------------------------------


def test_causal_graph_is_the_declared_dag():
    env = make()
    graph = env.unwrapped.causal_graph
    assert graph == campus_env.CAUSAL_GRAPH == causal.CAUSAL_GRAPH
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    assert sorted(order) == sorted(graph)
    for child, parents in graph.items():
        assert set(parents) <= set(graph), f"{child} has an undeclared parent"
        for parent in parents:
            assert order.index(parent) < order.index(child)
    # the minimum set of the design (DESIGN.md, "The structural causal model")
    minimum = {
        "day": set(), "hour": set(), "semester": set(), "weather": {"semester"},
        "gameday": {"day", "semester"}, "road_closure": {"gameday", "hour"},
        "crowd": {"day", "hour", "gameday", "weather"},
    }
    assert {k: set(v) for k, v in graph.items() if k in minimum} == minimum
    assert set(env.reset(seed=0)[1]["causal"]) == set(graph)


def test_causal_graph_cannot_be_mutated_through_the_env():
    env = make()
    graph = env.unwrapped.causal_graph
    graph["crowd"] = ()
    assert env.unwrapped.causal_graph["crowd"] == causal.CAUSAL_GRAPH["crowd"] != ()


# --- each intervention cuts exactly its mechanism ------------------------------


def test_do_crowd_ignores_weather_hour_and_gameday():
    env = make(obs_mode="state")
    naturals = set()
    for weather, gameday, hour, day in itertools.product(causal.WEATHERS, (False, True), (8.0, 12.0, 21.0), (1, 5)):
        parents = {"weather": weather, "gameday": gameday, "hour": hour, "day": day}
        _, info = env.reset(seed=4, options={"do": {**parents, "crowd": 0.3}})
        assert info["causal"]["crowd"] == 0.3
        assert all(c["crowd"] == 0.3 for c in contexts(env, [0, 3, 1]))
        # without the cut, the crowd does follow those parents
        _, info = env.reset(seed=4, options={"do": parents})
        naturals.add(info["causal"]["crowd"])
    assert len(naturals) > 10


def test_do_crowd_survives_mid_episode_changes_of_its_parents():
    env = make(obs_mode="state")
    env.reset(seed=2, options={"do": {"crowd": 0.3}})
    for change in ({"weather": "snowy"}, {"gameday": True}, {"hour": 12.0}, {"day": 6}):
        env.unwrapped.do(**change)
        assert all(c["crowd"] == 0.3 for c in contexts(env, [0, 2]))
    env.unwrapped.undo("crowd")
    crowds = {c["crowd"] for c in contexts(env, [0] * 3)}
    assert crowds != {0.3}


@pytest.mark.parametrize(
    ("hour", "closed"),
    [(10.5, False), (11.0, True), (12.0, True), (17.5, True), (18.0, False), (20.0, False)],
)
def test_do_gameday_closes_the_stadium_roads_at_game_time(hour, closed):
    env = make(obs_mode="state")
    for seed in range(3):
        _, info = env.reset(seed=seed, options={"do": {"gameday": True, "hour": hour}})
        assert info["causal"]["road_closure"] is closed
        assert info["causal"]["hour"] == hour
        assert all(c["road_closure"] is closed and c["hour"] == hour for c in contexts(env, [0, 1, 2]))
        _, info = env.reset(seed=seed, options={"do": {"gameday": False, "hour": hour}})
        assert info["causal"]["road_closure"] is False


def test_natural_clock_opens_the_roads_at_six():
    """Without do(hour) the clock runs: on a gameday the closure lifts when it reaches 18:00."""
    env = make(obs_mode="state").unwrapped
    for seed in range(200):
        _, info = env.reset(seed=seed, options={"do": {"gameday": True}})
        if 17.0 <= info["causal"]["hour"] < 18.0:
            break
    else:
        pytest.fail("no seed starts between 17:00 and 18:00")
    for c in contexts(env, [0] * 70):
        assert c["road_closure"] is (11.0 <= c["hour"] < 18.0)
        assert c["gameday"] is True
    assert c["road_closure"] is False


@pytest.mark.parametrize("seed", range(12))
def test_do_gameday_changes_nothing_upstream(seed):
    base = natural_context(seed)
    env = make(obs_mode="state")
    for gameday in (True, False):
        info = env.reset(seed=seed, options={"do": {"gameday": gameday}})[1]["causal"]
        assert info["gameday"] is gameday
        for name in ("day", "semester", "weather", "hour"):  # ancestors and unrelated variables
            assert info[name] == base[name], name


@pytest.mark.parametrize("seed", range(12))
def test_do_weather_leaves_day_semester_and_gameday(seed):
    base = natural_context(seed)
    env = make(obs_mode="state")
    for weather in causal.WEATHERS:
        info = env.reset(seed=seed, options={"do": {"weather": weather}})[1]["causal"]
        assert info["weather"] == weather
        for name in ("day", "semester", "gameday", "hour"):
            assert info[name] == base[name], name


def test_do_semester_reaches_its_descendants():
    """The weather and gameday mechanisms read the semester: changing it changes them for some seeds."""
    changed = set()
    env = make(obs_mode="state")
    for seed in range(40):
        base = natural_context(seed)
        other = "spring" if base["semester"] == "fall" else "fall"
        info = env.reset(seed=seed, options={"do": {"semester": other}})[1]["causal"]
        assert info["day"] == base["day"] and info["hour"] == base["hour"]
        changed |= {name for name in ("weather", "gameday") if info[name] != base[name]}
    assert changed == {"weather", "gameday"}


@pytest.mark.parametrize("seed", [0, 7])
def test_undo_restores_the_natural_values_of_the_same_seed(seed):
    # the agent stays put, so everything but the interventions themselves must come back
    natural = run(make(), [0] * 40, seed=seed)
    env = make()
    twin = run(env, [0] * 10, seed=seed)
    env.unwrapped.do(weather="snowy", crowd=1.0, gameday=True, hour=12.0, day=6)
    twin += run(env, [0] * 10, reset=False)
    env.unwrapped.undo("weather", "crowd")
    assert env.unwrapped.interventions == {"gameday": True, "hour": 12.0, "day": 6}
    twin += run(env, [0] * 5, reset=False)
    env.unwrapped.undo()
    assert env.unwrapped.interventions == {}
    twin += run(env, [0] * 15, reset=False)
    assert_same_trajectory(natural[:11], twin[:11])
    assert_same_trajectory(natural[26:], twin[26:])
    for t in range(11, 26):  # while intervened, the interventions show in info and in the context
        info = twin[t][-1]
        assert info["causal"]["gameday"] is True and info["causal"]["hour"] == 12.0
        assert info["interventions"]["day"] == 6


def test_interventions_are_reported():
    env = make(obs_mode="state")
    do = {"weather": "rainy", "crowd": 0.75, "hour": 9.5, "day": 3, "semester": "spring", "road_closure": True}
    _, info = env.reset(seed=1, options={"do": do})
    assert info["interventions"] == do == env.unwrapped.interventions
    for name, value in do.items():
        assert info["causal"][name] == value, name
    _, info = env.reset(seed=1)  # a new reset drops them
    assert info["interventions"] == {} == env.unwrapped.interventions


def test_do_hour_on_whole_minutes_sets_that_minute():
    """``do(hour=8.2)`` means 8:12; the clock must not fall a minute short through float rounding."""
    env = make(obs_mode="state")
    wrong = []
    for minute in range(7 * 60, 23 * 60 + 1):
        values = {minute / 60} | ({minute // 6 / 10} if minute % 6 == 0 else set())  # 490/60, 8.2
        for value in values:
            _, info = env.reset(seed=0, options={"do": {"hour": value}})
            if round(info["causal"]["hour"] * 60, 6) != minute:
                wrong.append(f"do(hour={value!r}) gives {info['causal']['hour'] * 60:.4f} min, not {minute}")
    assert not wrong, f"{len(wrong)} whole-minute clock interventions are off: {wrong[:6]}"


# --- the interventions act on movement -----------------------------------------

# The stadium entrance is at row 20, column 27; north of it a walkway leads west onto
# the stadium road at column 25 (see campus_env/layouts/campus.txt).
TO_STADIUM_ROAD = [1, 4, 4]
CALM = {"crowd": 0.0, "weather": "sunny"}


@pytest.mark.parametrize(
    ("do", "blocked"),
    [
        ({"gameday": True, "hour": 12.0}, True),
        ({"gameday": True, "hour": 20.0}, False),
        ({"gameday": False, "hour": 12.0}, False),
        ({"gameday": False, "hour": 12.0, "road_closure": True}, True),
        ({"gameday": True, "hour": 12.0, "road_closure": False}, False),
    ],
)
def test_road_closure_blocks_the_stadium_road(do, blocked):
    env = make(obs_mode="state")
    env.reset(seed=3, options={"do": {**CALM, **do}, "start": "stadium", "goal": "library"})
    infos = [env.step(a)[-1] for a in TO_STADIUM_ROAD]
    assert [i["blocked"] for i in infos[:2]] == [False, False]
    assert infos[2]["blocked"] is blocked
    assert infos[2]["blocked_moves"] == int(blocked)


@pytest.mark.parametrize(("semester", "blocked"), [("spring", True), ("fall", False)])
def test_construction_zone_blocks_in_spring(semester, blocked):
    # from the library entrance (row 6, column 16) south: grass, then the construction zone
    env = make(obs_mode="state")
    env.reset(seed=1, options={"do": {**CALM, "semester": semester}, "start": "library", "goal": "gym"})
    infos = [env.step(2)[-1] for _ in range(2)]
    assert infos[0]["blocked"] is False
    assert infos[1]["blocked"] is blocked


def test_rain_makes_grass_slippery():
    slipped = {}
    for weather in ("sunny", "rainy"):
        env = make(obs_mode="state")
        env.reset(seed=1, options={"do": {"crowd": 0.0, "weather": weather}, "start": "library", "goal": "gym"})
        env.step(2)  # onto the grass south of the library
        *_, info = run(env, [3, 4] * 30, reset=False)[-1]
        slipped[weather] = info["slipped_moves"]
    assert slipped["sunny"] == 0 < slipped["rainy"]


def test_crowd_blocks_moves_near_busy_buildings():
    blocks = {}
    for crowd in (0.0, 1.0):
        env = make(obs_mode="state")
        do = {"crowd": crowd, "weather": "sunny", "day": 1, "hour": 12.0}
        env.reset(seed=1, options={"do": do, "start": "dining", "goal": "gym"})
        *_, info = run(env, [3, 4] * 30, reset=False)[-1]
        blocks[crowd] = info["crowd_blocks"]
    assert blocks[0.0] == 0 < blocks[1.0]


# --- counterfactual twins --------------------------------------------------------


def _find_seed(predicate, limit=3000):
    env = make(obs_mode="state")
    for seed in range(limit):
        if predicate(env.reset(seed=seed)[1]["causal"]):
            return seed
    pytest.fail("no seed with the wanted context")


def test_an_intervention_that_changes_nothing_gives_the_identical_episode():
    """do(road_closure=False) on a non-gameday fall Tuesday morning is a no-op: same obs, rewards, infos."""
    seed = _find_seed(lambda c: c["day"] == 1 and c["semester"] == "fall" and not c["gameday"] and c["hour"] < 11)
    actions = random_actions(120, seed=5)
    plain = run(make(), actions, seed=seed)
    twin = run(make(), actions, seed=seed, options={"do": {"road_closure": False}})
    assert_same_trajectory(plain, twin, ignore_info=("interventions",))
    assert twin[0][-1]["interventions"] == {"road_closure": False}


@pytest.mark.parametrize("name", STATIC)
@pytest.mark.parametrize("seed", [3, 8])
def test_do_a_static_variable_at_its_natural_value_is_a_no_op(name, seed):
    """The noise tape is consumed the same way whatever is intervened on."""
    value = natural_context(seed)[name]
    actions = random_actions(80, seed=seed)
    plain = run(make(), actions, seed=seed)
    twin = run(make(), actions, seed=seed, options={"do": {name: value}})
    assert_same_trajectory(plain, twin, ignore_info=("interventions",))


def _other_value(name, natural):
    """A value of ``name`` other than its natural one."""
    other = {
        "day": lambda: (natural + 3) % 7,
        "hour": lambda: 21.0 if natural < 15 else 9.0,
        "semester": lambda: "spring" if natural == "fall" else "fall",
        "weather": lambda: "snowy" if natural != "snowy" else "sunny",
        "gameday": lambda: not natural,
        "road_closure": lambda: not natural,
        "crowd": lambda: 0.95 if natural < 0.5 else 0.05,
    }
    return other[name]()


@pytest.mark.parametrize("name", list(causal.CAUSAL_GRAPH))
def test_twins_agree_on_every_non_descendant_at_every_step(name):
    keep = set(causal.CAUSAL_GRAPH) - descendants(name) - {name}
    moved = set()
    for seed in range(6):
        actions = random_actions(40, seed=seed)
        env = make(obs_mode="state")
        _, info = env.reset(seed=seed)
        value = _other_value(name, info["causal"][name])
        plain = [info["causal"]] + contexts(env, actions)
        _, info = env.reset(seed=seed, options={"do": {name: value}})
        twin = [info["causal"]] + contexts(env, actions)
        for t, (a, b) in enumerate(zip(plain, twin, strict=True)):
            assert b[name] == value, f"step {t}: {name} is not held at {value!r}"
            for other in keep:
                assert_identical(a[other], b[other], f"seed {seed} step {t} {other} under do({name})")
            moved |= {d for d in descendants(name) if a[d] != b[d]}
    if descendants(name):
        assert moved, f"do({name}) never changed any descendant: the mechanisms do not read it"


@pytest.mark.parametrize("k", [1, 25, 60])
def test_mid_episode_do_leaves_earlier_steps_identical(k):
    actions = random_actions(90, seed=k)
    plain = run(make(), actions, seed=31)
    env = make()
    twin = run(env, actions[:k], seed=31)
    env.unwrapped.do(weather="snowy", crowd=0.9)
    twin += run(env, actions[k:], reset=False)
    assert_same_trajectory(plain[: k + 1], twin[: k + 1])
    assert all(t[-1]["causal"]["crowd"] == 0.9 for t in twin[k + 1 :])
    # later steps see the same clock, day and semester: only the intervened branch of the graph moves
    for a, b in zip(plain[k + 1 :], twin[k + 1 :], strict=True):
        for name in ("day", "hour", "semester", "gameday", "road_closure"):
            assert a[-1]["causal"][name] == b[-1]["causal"][name]


def test_mid_episode_do_equals_the_same_do_at_reset_from_then_on():
    """The context after do() at step k equals the twin intervened from the start (same noise tape)."""
    env = make(obs_mode="state")
    env.reset(seed=12)
    contexts(env, [0] * 20)
    env.unwrapped.do(weather="rainy", gameday=True)
    late = contexts(env, [0] * 30)
    env.reset(seed=12, options={"do": {"weather": "rainy", "gameday": True}})
    early = contexts(env, [0] * 50)[20:]
    assert late == early


def test_no_op_interventions_across_the_tape_keep_long_episodes_identical():
    """Unwrapped env, 600 steps (past the internal tape length): no-op do()/undo() mid-way changes nothing."""
    actions = [3, 4, 0] * 200
    plain = run(make().unwrapped, actions, seed=17)
    assert not any(t[0] == "reset" for t in plain[1:]), "the episode should not end (pick other actions)"
    env = make().unwrapped
    twin = run(env, actions[:100], seed=17)
    natural = twin[0][-1]["causal"]
    env.do(day=natural["day"], semester=natural["semester"])
    twin += run(env, actions[100:333], reset=False)
    env.undo()
    twin += run(env, actions[333:], reset=False)
    assert_same_trajectory(plain, twin, ignore_info=("interventions",))
    minutes = [round(t[-1]["causal"]["hour"] * 60) for t in plain]
    assert minutes == sorted(minutes)  # the clock runs, one minute a step, and stops at 23:00
    assert minutes[-1] == min(minutes[0] + 600, 23 * 60)


# --- splits and the semester pin ----------------------------------------------------


def _matches(context, partial):
    return all(context[k] == v for k, v in partial.items())


def _heldout(context):
    return any(_matches(context, h) for h in causal.HELDOUT_CONTEXTS)


def _reset_contexts(seeds, **kwargs):
    env = make(obs_mode="state", **kwargs)
    return [env.reset(seed=s)[1]["causal"] for s in seeds]


def test_heldout_contexts_are_declared_once_and_valid():
    assert campus_env.HELDOUT_CONTEXTS is causal.HELDOUT_CONTEXTS
    assert causal.HELDOUT_CONTEXTS
    for partial in causal.HELDOUT_CONTEXTS:
        causal.validate_do(partial)  # every entry is a valid partial assignment


def test_split_all_samples_heldout_contexts_sometimes():
    contexts_ = _reset_contexts(range(600))
    assert 0 < sum(map(_heldout, contexts_)) < len(contexts_)


def test_train_split_never_samples_a_heldout_context():
    contexts_ = _reset_contexts(range(400), split="train")
    assert not any(map(_heldout, contexts_))
    assert any(c["gameday"] for c in contexts_) and any(c["weather"] in ("rainy", "snowy") for c in contexts_)


def test_heldout_split_always_samples_a_heldout_context():
    contexts_ = _reset_contexts(range(300), split="heldout")
    assert all(map(_heldout, contexts_))
    assert len({(c["day"], c["hour"], c["weather"]) for c in contexts_}) > 20  # still varied


def test_heldout_split_after_episode_end_and_in_the_vector_env():
    env = make(obs_mode="state", split="heldout")
    env.reset(seed=0)
    for _ in range(20):
        assert _heldout(env.reset()[1]["causal"])
    envs = campus_env.CampusNavVectorEnv(num_envs=16, obs_mode="state", split="train")
    _, info = envs.reset(seed=0)
    c = info["causal"]
    for i in range(16):
        ctx = {"gameday": bool(c["gameday"][i]), "weather": causal.WEATHERS[c["weather"][i]]}
        assert not _heldout(ctx)


@pytest.mark.parametrize("split", ["all", "train", "heldout"])
@pytest.mark.parametrize("semester", ["spring", "fall"])
def test_semester_pins_the_semester(semester, split):
    contexts_ = _reset_contexts(range(150), semester=semester, split=split)
    assert {c["semester"] for c in contexts_} == {semester}
    if split != "heldout":  # (held-out contexts are gamedays: Fridays and Saturdays only)
        assert len({c["day"] for c in contexts_}) == 7


def test_split_twins_stay_exact():
    """Under a split the same seed picks the same context whatever is intervened on."""
    actions = random_actions(50, seed=9)
    for seed in range(5):
        plain = run(make(split="train"), actions, seed=seed)
        value = plain[0][-1]["causal"]["weather"]
        twin = run(make(split="train"), actions, seed=seed, options={"do": {"weather": value}})
        assert_same_trajectory(plain, twin, ignore_info=("interventions",))


def test_split_and_semester_arguments_are_checked():
    with pytest.raises(ValueError, match=r"split must be one of 'train', 'heldout', 'all', got 'test'"):
        make(split="test")
    with pytest.raises(ValueError, match=r"semester must be None, 'fall' or 'spring', got 'summer'"):
        make(semester="summer")

