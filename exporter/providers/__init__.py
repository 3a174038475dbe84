"""PROVIDERS: the only list of providers. The CLI hands it to the core."""

from __future__ import annotations

from exporter.core.provider import ProviderRegistry
from exporter.providers.aliyun_vod import AliyunVod
from exporter.providers.encoding_com import EncodingCom
from exporter.providers.ipernity import Ipernity
from exporter.providers.yandex_direct import YandexDirect

PROVIDERS: ProviderRegistry = {cls.name: cls for cls in (YandexDirect, Ipernity, EncodingCom, AliyunVod)}
