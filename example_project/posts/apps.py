from django.apps import AppConfig


class Config(AppConfig):
    name = "example_project.posts"
    label = "posts"
