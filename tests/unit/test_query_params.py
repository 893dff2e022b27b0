from transports.http.query_params import query_list


def test_single_parameter_is_a_comma_separated_list() -> None:
    assert query_list(["A|s|1, B|s|1"]) == ["A|s|1", "B|s|1"]
    assert query_list([""]) == []
    assert query_list(["A,,B"]) == ["A", "", "B"]


def test_repeated_parameters_are_taken_as_they_are() -> None:
    assert query_list(["A, B", " C"]) == ["A, B", " C"]
    assert query_list([]) == []
