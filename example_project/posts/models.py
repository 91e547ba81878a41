from django.db import models


class Tag(models.Model):
    name = models.CharField(max_length=50, unique=True)


class Post(models.Model):
    author = models.ForeignKey("users.User", on_delete=models.CASCADE, related_name="posts")
    title = models.CharField(max_length=200)
    body = models.TextField()
    published = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="posts")

    class Meta:
        indexes = [models.Index(fields=["-created_at"], name="post_created_idx")]
        constraints = [models.UniqueConstraint(fields=["author", "title"], name="unique_author_title")]
