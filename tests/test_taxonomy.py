from pathlib import Path

import numpy as np
import pytest

from pcbseg.taxonomy import TAXONOMIES, TaxonomyError, get_taxonomy, load_classes


def test_default_taxonomy_names_and_ignore():
    tax = get_taxonomy("default")
    assert tax.names == ("background", "trace", "via", "pad", "component", "hole", "silkscreen")
    assert tax.ignore_index == 255


def test_fine_taxonomy_splits_component_and_keeps_the_rest():
    fine, default = get_taxonomy("fine"), get_taxonomy("default")
    kinds = ["resistor", "capacitor", "inductor", "transistor", "ic", "connector"]
    assert [n for n in fine.names if n in kinds] == kinds
    assert set(fine.names) - set(kinds) == set(default.names) - {"component"}
    for kind in kinds:
        assert default.resolve(kind) == default.id_of("component")
        assert fine.names[fine.resolve(kind)] == kind


@pytest.mark.parametrize("name", sorted(TAXONOMIES))
def test_classes_yaml_round_trip(tmp_path: Path, name: str):
    tax = get_taxonomy(name)
    tax.save(tmp_path / "classes.yaml")
    assert load_classes(tmp_path / "classes.yaml") == tax


def test_colours_are_distinct_and_colorize_maps_ids():
    tax = get_taxonomy("default")
    assert len(set(tax.colors)) == tax.num_classes
    mask = np.array([[0, 1], [2, 255]], np.uint8)
    rgb = tax.colorize(mask)
    assert tuple(rgb[0, 1]) == tax.colors[1] and tuple(rgb[1, 0]) == tax.colors[2]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("classes: [{name: a}, {name: a}]", "repeats"),
        ("classes: [{name: a, id: 3}]", "has id 3"),
        ("classes: [{name: a, color: [1, 2]}]", "colour"),
        ("ignore_index: 0\nclasses: [{name: a}]", "ignore_index"),
        ("just a string", "mapping"),
        ("classes: [unclosed", "not valid YAML"),
    ],
)
def test_bad_classes_yaml_names_file_and_problem(tmp_path: Path, text: str, needle: str):
    path = tmp_path / "classes.yaml"
    path.write_text(text)
    with pytest.raises(TaxonomyError) as err:
        load_classes(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_unknown_taxonomy_is_a_clear_error():
    with pytest.raises(TaxonomyError, match="unknown taxonomy 'coarse'"):
        get_taxonomy("coarse")
