"""morphable"""
