"""Titles a procedure gives the instances it starts: stored in English, read in Chinese on Chinese pages."""
from __future__ import annotations

from app.services.workflow import titles

RETURN = titles.register("Test return: {material} lot {lot}", "测试退货：{material} 批次 {lot}")


def test_a_title_made_from_a_format_reads_in_chinese_with_its_values():
    title = RETURN.format(material="PVC resin", lot="M1")
    assert title == "Test return: PVC resin lot M1"
    assert titles.localized(title, "zh-CN") == "测试退货：PVC resin 批次 M1"
    assert titles.localized(title, "en") == title


def test_a_typed_title_and_an_empty_one_stay_as_they_are():
    assert titles.localized("Burr on hub", "zh-CN") == "Burr on hub"
    assert titles.localized("Test return of M1", "zh-CN") == "Test return of M1"
    assert titles.localized(None, "zh-CN") == ""


def test_registering_a_format_again_returns_the_same_one():
    assert titles.register("Test return: {material} lot {lot}", "其他") is RETURN
