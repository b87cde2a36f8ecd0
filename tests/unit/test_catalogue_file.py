"""Inventory files: all-or-nothing, and every refusal names its file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from realorders.catalogue_file import MAX_STOCK, ProductRow, read_inventory
from realorders.errors import InputError

HEADER = "product_id,name,price,stock\n"


def write(tmp_path: Path, name: str, data: bytes | str) -> str:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def refused(path: str) -> InputError:
    with pytest.raises(InputError) as caught:
        read_inventory(path)
    assert caught.value.source == path
    return caught.value


def test_csv_inventory(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", HEADER + "KB-01,Keyboard,89.00,40\nMS-02,,24.5,0\n")
    assert read_inventory(path) == [
        ProductRow("KB-01", "Keyboard", 89.0, 40),
        ProductRow("MS-02", "MS-02", 24.5, 0),  # an empty name falls back to the id
    ]


def test_csv_bom_crlf_quotes_and_blank_rows(tmp_path: Path) -> None:
    data = (
        b"\xef\xbb\xbfproduct_id,name,price,stock\r\n"
        b'"A,1","Desk ""XL""\r\nwalnut",0.5,3\r\n'
        b",,,\r\n"
        b"\r\n"
        b"B , Stool ,.99, 7 \r\n"
    )
    assert read_inventory(write(tmp_path, "inv.csv", data)) == [
        ProductRow("A,1", 'Desk "XL"\r\nwalnut', 0.5, 3),
        ProductRow("B ", " Stool ", 0.99, 7),  # ids and names verbatim
    ]


def test_csv_header_synonyms_and_order(tmp_path: Path) -> None:
    path = write(tmp_path, "inv.csv", "Stock,Price,SKU,colour\n5,10,KB-01,red\n")
    assert read_inventory(path) == [ProductRow("KB-01", "KB-01", 10.0, 5)]


def test_json_inventory(tmp_path: Path) -> None:
    data = [
        {"product_id": "KB-01", "name": "Keyboard", "price": 89, "stock": 40, "extra": True},
        {"productId": "MS-02", "price": 24.5, "stock": 0},
        {"product_id": "🖱", "name": None, "price": 0, "stock": MAX_STOCK},
    ]
    path = write(tmp_path, "inv.json", json.dumps(data, indent=2))
    assert read_inventory(path) == [
        ProductRow("KB-01", "Keyboard", 89.0, 40),
        ProductRow("MS-02", "MS-02", 24.5, 0),
        ProductRow("🖱", "🖱", 0.0, MAX_STOCK),
    ]
    assert all(isinstance(row.price, float) for row in read_inventory(path))


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("inventory", ' \n[{"product_id": "A", "price": 1, "stock": 2}]', "json"),
        ("inv.txt", b'\xef\xbb\xbf[{"product_id": "A", "price": 1, "stock": 2}]', "json"),
        ("inv.data", HEADER + "A,A,1,2\n", "csv"),
        ("INV.CSV", HEADER + "A,A,1,2\n", "csv"),
    ],
)
def test_format_by_extension_else_first_character(
    tmp_path: Path, name: str, data: str | bytes, expected: str
) -> None:
    assert read_inventory(write(tmp_path, name, data)) == [ProductRow("A", "A", 1.0, 2)]


def test_json_extension_wins_over_content(tmp_path: Path) -> None:
    error = refused(write(tmp_path, "inv.json", HEADER + "A,A,1,2\n"))
    assert (error.line, error.reason) == (1, "malformed JSON: Expecting value")


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("B,b,-1,3", "price must be a non-negative number, got -1"),
        ("B,b,$1,3", "price must be a non-negative number, got $1"),
        ("B,b,1e3,3", "price must be a non-negative number, got 1e3"),
        ("B,b,nan,3", "price must be a non-negative number, got nan"),
        ('B,b,"1,50",3', "price must be a non-negative number, got 1,50"),
        ("B,b,,3", "price must be a non-negative number, got an empty field"),
        ("B,b,1,1.5", "stock must be a whole number from 0 to 1000000000, got 1.5"),
        ("B,b,1,-1", "stock must be a whole number from 0 to 1000000000, got -1"),
        ("B,b,1,1000000001", "stock must be a whole number from 0 to 1000000000, got 1000000001"),
        ("B,b,1,", "stock must be a whole number from 0 to 1000000000, got an empty field"),
        (" ,b,1,3", "product_id must not be empty"),
        ("B,b,1", "expected 4 fields, got 3"),
        ("B,b,1,3,x", "expected 4 fields, got 5"),
        ("A,again,1,3", "product 'A' is listed twice (first at line 2)"),
        ("B,caf\xe9,1,3", "line is not valid UTF-8 (byte 0xe9 at column 6)"),
    ],
)
def test_csv_bad_row_refuses_the_file_at_its_line(tmp_path: Path, row: str, reason: str) -> None:
    data = (HEADER + "A,a,1,1\n" + row + "\nC,c,1,1\n").encode("latin-1")
    error = refused(write(tmp_path, "inv.csv", data))
    assert (error.line, error.reason) == (3, reason)
    assert str(error) == f"{error.source}:3: {reason}"


@pytest.mark.parametrize(
    ("data", "line", "reason"),
    [
        ("", 1, "file is empty"),
        ("\n\n", 1, "file is empty"),
        (HEADER, 1, "no products in file"),
        ("product_id,name,stock\nA,a,1\n", 1, "missing column price; the header has"),
        ("id,name\nA,a\n", 1, "missing columns product_id, price, stock"),
        ('product_id,name,price,stock\nA,"unterminated\n', 2, "expected 4 fields, got 2"),
    ],
)
def test_csv_file_level_problems(tmp_path: Path, data: str, line: int, reason: str) -> None:
    error = refused(write(tmp_path, "inv.csv", data))
    assert error.line == line
    assert error.reason.startswith(reason)


GOOD_JSON = '{"product_id": "A", "price": 1, "stock": 1}'


@pytest.mark.parametrize(
    ("element", "reason"),
    [
        (
            '{"product_id": "B", "price": -0.5, "stock": 1}',
            "price must be a non-negative number, got -0.5",
        ),
        (
            '{"product_id": "B", "price": "9.99", "stock": 1}',
            'price must be a non-negative number, got "9.99"',
        ),
        (
            '{"product_id": "B", "price": true, "stock": 1}',
            "price must be a non-negative number, got true",
        ),
        (
            '{"product_id": "B", "price": 1e999, "stock": 1}',
            "price must be a non-negative number, got inf",
        ),
        ('{"product_id": "B", "stock": 1}', "price must be a non-negative number, got null"),
        (
            '{"product_id": "B", "price": 1, "stock": 1.0}',
            "stock must be a whole number from 0 to 1000000000, got 1.0",
        ),
        (
            '{"product_id": "B", "price": 1, "stock": "3"}',
            'stock must be a whole number from 0 to 1000000000, got "3"',
        ),
        (
            '{"product_id": "B", "price": 1, "stock": false}',
            "stock must be a whole number from 0 to 1000000000, got false",
        ),
        (
            '{"product_id": "B", "price": 1, "stock": 1000000001}',
            "stock must be a whole number from 0 to 1000000000, got 1000000001",
        ),
        (
            '{"product_id": "B", "price": 1}',
            "stock must be a whole number from 0 to 1000000000, got null",
        ),
        ('{"price": 1, "stock": 1}', "product_id is missing"),
        ('{"product_id": "", "price": 1, "stock": 1}', "product_id must not be empty"),
        ('{"product_id": 7, "price": 1, "stock": 1}', "product_id must be a string, got 7"),
        ('{"product_id": "B", "name": 5, "price": 1, "stock": 1}', "name must be a string, got 5"),
        (
            '{"product_id": "B", "productId": "C", "price": 1, "stock": 1}',
            "product_id and productId disagree",
        ),
        (GOOD_JSON, "product 'A' is listed twice (first at line 2)"),
        ("[1]", "expected a product object, got array"),
        ('"A"', "expected a product object, got string"),
        ('{"product_id": "B", "price": NaN, "stock": 1}', "malformed JSON: NaN is not valid JSON"),
        ('{"product_id": "B" "price": 1}', "malformed JSON: Expecting ',' delimiter"),
    ],
)
def test_json_bad_element_is_refused_at_its_line(tmp_path: Path, element: str, reason: str) -> None:
    data = f"[\n  {GOOD_JSON},\n  {element},\n  {{}}\n]"
    error = refused(write(tmp_path, "inv.json", data))
    assert (error.line, error.reason) == (3, reason)


@pytest.mark.parametrize(
    ("data", "line", "reason"),
    [
        (b"", 1, "file is empty"),
        (b"[]", 1, "no products in file"),
        (
            b'{"product_id": "A", "price": 1, "stock": 1}',
            1,
            "expected a JSON array of products, got object",
        ),
        (b"\n\n42", 3, "expected a JSON array of products, got number"),
        (
            b"[\n" + GOOD_JSON.encode() + b",\n\xff]",
            3,
            "line is not valid UTF-8 (byte 0xff at column 1)",
        ),
        (b"[\n" + GOOD_JSON.encode(), 2, "malformed JSON: the array is not closed"),
    ],
)
def test_json_file_level_problems(tmp_path: Path, data: bytes, line: int, reason: str) -> None:
    error = refused(write(tmp_path, "inv.json", data))
    assert (error.line, error.reason) == (line, reason)


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.csv")
    error = refused(path)
    assert error.line is None
    assert error.reason == "cannot read the inventory file: No such file or directory"


def test_directory_is_refused(tmp_path: Path) -> None:
    assert refused(str(tmp_path)).reason.startswith("cannot read the inventory file")
