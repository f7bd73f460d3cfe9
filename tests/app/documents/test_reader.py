"""Reading documents: encodings written by the tests, .docx and .pdf generated here, and
every bad file refused with one line naming it."""

from __future__ import annotations

import codecs
import zipfile

import pytest

from app.documents import MAX_FILE_BYTES, DocumentError, read_document
from app.documents import reader as reader_module
from app.errors import describe
from tests.app.documents.fixtures import write_docx, write_pdf

# Long enough that the statistics between GB18030 and Big5 are unambiguous, as any real
# judgment is (a handful of characters can decode sensibly in both).
SIMPLIFIED = ("被告人张某于二零二三年五月在某市盗窃电动车一辆，价值人民币三千元。案发后如实供述，"
              "退赔被害人全部损失，取得谅解。本院认为，被告人以非法占有为目的，秘密窃取他人财物，"
              "数额较大，其行为已构成盗窃罪。")
TRADITIONAL = ("被告人張某於民國一一二年五月在臺北市竊取機車一輛，價值新臺幣三萬元。"
               "案發後坦承犯行，並賠償被害人全部損失，取得諒解。本院認為，被告意圖為自己不法之所有，竊取他人之動產，"
               "其行為已構成竊盜罪。")


@pytest.mark.parametrize(("text", "encoding", "detail"), [
    (SIMPLIFIED, "gbk", "GB18030/GBK"),
    (SIMPLIFIED, "gb18030", "GB18030/GBK"),
    (TRADITIONAL, "big5", "Big5"),
    (SIMPLIFIED + "\nEnglish too.", "utf-8", "UTF-8"),
    (TRADITIONAL, "utf-8-sig", "UTF-8 (BOM)"),
    (SIMPLIFIED, "utf-16", "UTF-16"),  # Python writes the BOM (little-endian here)
])
def test_text_encodings_are_detected(tmp_path, text, encoding, detail):
    path = tmp_path / "judgment.txt"
    path.write_bytes(text.encode(encoding))
    document = read_document(path)
    assert document.text == text
    assert (document.detail, document.kind, document.name) == (detail, "text", "judgment.txt")


def test_utf16_big_endian_and_crlf(tmp_path):
    path = tmp_path / "notes.md"
    path.write_bytes(codecs.BOM_UTF16_BE + "第一行\r\n第二行\r\n".encode("utf-16-be"))
    assert read_document(path).text == "第一行\n第二行"


def test_docx_paragraphs_and_tables_in_reading_order(tmp_path):
    path = write_docx(tmp_path / "case.docx", [
        "起诉书", [["被告人", "罪名"], ["张某", "盗窃罪"]], "事实如下。",
        [["金额", "三千元"]], "此致"])
    document = read_document(path)
    assert document.text == "起诉书\n被告人 | 罪名\n张某 | 盗窃罪\n事实如下。\n金额 | 三千元\n此致"
    assert document.kind == "docx"


def test_docx_merged_cells_are_written_once(tmp_path):
    import docx

    document = docx.Document()
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).merge(table.cell(0, 2)).text = "判决结果"
    for c, value in enumerate(["一", "二", "三"]):
        table.cell(1, c).text = value
    path = tmp_path / "merged.docx"
    document.save(str(path))
    assert read_document(path).text == "判决结果\n一 | 二 | 三"


def test_pdf_text_layer_page_by_page(tmp_path):
    path = write_pdf(tmp_path / "judgment.pdf", [["The court finds", "(as follows)"], None,
                                                 ["Sentence: one year."]])
    document = read_document(path)
    assert document.text == "The court finds\n(as follows)\n\nSentence: one year."
    assert document.detail == "3 pages"


def test_pdf_with_an_empty_user_password_opens(tmp_path):
    path = write_pdf(tmp_path / "restricted.pdf", [["Printing restricted only."]],
                     owner_only=True)
    assert read_document(path).text == "Printing restricted only."


def _refused(path, *words: str) -> str:
    with pytest.raises(DocumentError) as caught:
        read_document(path)
    line = str(caught.value)
    assert line.startswith(f"{path}: ") and "\n" not in line, line
    for word in words:
        assert word in line, line
    failure = describe(caught.value)
    assert failure.exit_code == 2 and failure.title == "The document cannot be read"
    return line


def test_bad_files_are_refused_with_one_line(tmp_path):
    _refused(tmp_path / "missing.txt", "no such file")
    (tmp_path / "folder.txt").mkdir()
    _refused(tmp_path / "folder.txt", "folder")
    (tmp_path / "empty.txt").write_bytes(b"")
    _refused(tmp_path / "empty.txt", "empty")
    (tmp_path / "blank.md").write_text(" \n\n\t\n")
    _refused(tmp_path / "blank.md", "empty")
    (tmp_path / "model.txt").write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(range(256)) * 8)
    _refused(tmp_path / "model.txt", "binary")
    (tmp_path / "latin.txt").write_bytes("Ünïcödé façade".encode("cp1252") * 3)
    _refused(tmp_path / "latin.txt", "known encoding")
    (tmp_path / "case.rtf").write_text("{\\rtf1 hello}")
    _refused(tmp_path / "case.rtf", "unsupported file type '.rtf'", ".docx")
    (tmp_path / "README").write_text("hello")
    _refused(tmp_path / "README", "without an extension")


def test_corrupt_encrypted_and_scanned_office_files(tmp_path):
    (tmp_path / "fake.docx").write_text("this is not a zip archive")
    _refused(tmp_path / "fake.docx", "not a valid .docx")
    with zipfile.ZipFile(tmp_path / "hollow.docx", "w") as archive:
        archive.writestr("hello.txt", "a zip, but no Word document inside")
    _refused(tmp_path / "hollow.docx", "not a valid .docx")
    good = write_docx(tmp_path / "good.docx", ["text"]).read_bytes()
    (tmp_path / "truncated.docx").write_bytes(good[: len(good) // 2])
    _refused(tmp_path / "truncated.docx", ".docx")
    (tmp_path / "locked.docx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    _refused(tmp_path / "locked.docx", "encrypted")
    (tmp_path / "fake.pdf").write_bytes(b"%PDF-1.7\nnot really\n")
    _refused(tmp_path / "fake.pdf", "not a valid PDF")
    _refused(write_pdf(tmp_path / "locked.pdf", [["secret"]], password="pw"), "encrypted")
    _refused(write_pdf(tmp_path / "scan.pdf", [None, None]), "no text layer", "2 page(s)",
             "OCR")


def test_over_the_limits(tmp_path, monkeypatch):
    big = tmp_path / "huge.txt"
    with open(big, "wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing is really written
    _refused(big, "documents of up to 50 MB")
    monkeypatch.setattr(reader_module, "MAX_TEXT_CHARS", 100)
    (tmp_path / "long.txt").write_text("字" * 101, encoding="utf-8")
    _refused(tmp_path / "long.txt", "101 characters", "up to 100")
    (tmp_path / "fits.txt").write_text("字" * 100, encoding="utf-8")
    assert read_document(tmp_path / "fits.txt").chars == 100
