"Build the landmark2020 wheel from settings.ini (nbdev 2 layout; no pkg_resources)."
from configparser import ConfigParser
import os, setuptools

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']
get = lambda k, d='': cfg.get(k, d)
lib_name, lib_path = cfg['lib_name'], get('lib_path', cfg['lib_name'])
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable']
py_versions = '3.10 3.11 3.12 3.13'.split()
min_python = get('min_python', '3.10')
setuptools.setup(
    name=lib_name, version=get('version', '0.0.1'),
    description=get('description', lib_name), keywords=get('keywords').split(),
    author=get('author'), author_email=get('author_email'), license=get('license'),
    classifiers=['Development Status :: ' + statuses[int(get('status', '3')) - 1],
                 'Intended Audience :: ' + get('audience', 'Developers').title(),
                 'Natural Language :: ' + get('language', 'English').title()] +
                ['Programming Language :: Python :: ' + v for v in py_versions[py_versions.index(min_python):]],
    url=get('git_url'), project_urls={'Source': get('git_url')},
    packages=setuptools.find_packages(include=[lib_path, lib_path + '.*']),
    include_package_data=True, package_data={lib_path: ['configs/*.yaml']},
    install_requires=get('requirements').split(),
    extras_require={'dev': get('dev_requirements').split(), 'faiss': ['faiss-cpu'],
                    'spatial': get('spatial_requirements', 'opencv-python-headless').split()},
    python_requires='>=' + min_python,
    long_description=open('README.md', encoding='utf-8').read() if os.path.exists('README.md') else lib_name,
    long_description_content_type='text/markdown', zip_safe=False,
    entry_points={'console_scripts': get('console_scripts').split(),
                  'nbdev': [f'{lib_name}={lib_path}._modidx:d']},
)
