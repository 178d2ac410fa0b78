"""PyTorch definitions of third-party networks whose published weights lfa loads strictly.

- :mod:`lfa.face.nets.sixdrepnet`: 6DRepNet head-pose regressor (Hempel et al. 2022).
- :mod:`lfa.face.nets.irse`: IR / IR-SE face-recognition backbones (CurricularFace IR-101).
- :mod:`lfa.face.nets.weights`: safe state-dict loading shared by both.

Not PyTorch: :mod:`lfa.face.nets.whenet_io` (WHENet on ONNX Runtime) and
:mod:`lfa.face.nets.dlib_resnet_onnx` (dlib's face-recognition ResNet read from its .dat as an ONNX graph).
"""
