"""Media I/O: RGB uint8 frames in, H.264 mp4 out (no torch needed, so the light pose environment uses it too).

* :mod:`.images`: ``read_image`` / ``write_image``;
* :mod:`.readers`: ``VideoReader`` (lazy, random access) and ``read_video`` over files or frame folders;
* :mod:`.writer`: ``VideoWriter`` (streaming, atomic) and ``write_video``;
* :mod:`.probing`: frame-file order, display rotation, which decoders this process has.
"""

from magicanimate.media.images import IMAGE_EXTENSIONS, read_image, write_image
from magicanimate.media.probing import decord_available, list_frame_files, natural_key
from magicanimate.media.readers import BACKENDS, DEFAULT_FOLDER_FPS, Video, VideoReader, read_video
from magicanimate.media.writer import FORMATS, WRITER_BACKENDS, VideoWriter, check_video_output, write_video

__all__ = [
    "BACKENDS", "DEFAULT_FOLDER_FPS", "FORMATS", "check_video_output", "IMAGE_EXTENSIONS", "Video", "VideoReader", "VideoWriter", "WRITER_BACKENDS",
    "decord_available", "list_frame_files", "natural_key", "read_image", "read_video", "write_image", "write_video",
]
