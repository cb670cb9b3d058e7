"""From a run to one self-describing .onnx file: conversion, parity, upgrades, the file's metadata."""
