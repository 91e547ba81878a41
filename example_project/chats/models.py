from django.db import models


class Chat(models.Model):
    title = models.CharField(max_length=100)
    members = models.ManyToManyField("users.User", related_name="chats")
    created_at = models.DateTimeField(auto_now_add=True)


class Message(models.Model):
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="messages")
    sender = models.ForeignKey("users.User", on_delete=models.SET_NULL, null=True, related_name="messages")
    text = models.TextField()
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["chat", "sent_at"], name="message_chat_sent_idx")]
